"""The front process: HTTP, the model registry, the memory budget and the workers' supervision.

It never imports a framework, numpy or model code (``tests/fast/test_boundaries.py``): models run
in workers (``server.worker``), which the front reaches only through ``supervisor``.

- ``http/``: the ASGI app, the invoke fast path, connection guards, graceful shutdown;
- ``service``: the façade the routes call (load, unload, invoke, describe);
- ``registry``, ``budget``, ``submit_dir``, ``metrics``: what the service keeps and reads;
- ``supervisor/``: the pool of worker slots and the handle on one worker process.
"""
