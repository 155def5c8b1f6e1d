"""The front process: HTTP, the model registry, the memory budget and the workers' supervision.

It never imports a framework, numpy or model code (``tests/fast/test_boundaries.py``): models run
in workers (``server.worker``), which the front reaches only through ``supervisor``.

- ``http/``: the ASGI app, the invoke fast path, connection guards, graceful shutdown;
- ``service``: the façade the routes call (load, unload, invoke, describe);
- ``registry``, ``budget``, ``submit_dir``, ``metrics``: what the service keeps and reads;
- ``placement``: which worker a model, a replica or a request goes to;
- ``ledger``: whom a worker's death is blamed on, who is quarantined, what is retried;
- ``background``: the tasks nobody awaits, held and their failures logged;
- ``supervisor/``: the pool of worker slots and the handle on one worker process.
"""
