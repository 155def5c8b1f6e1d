"""The model server, one folder per process role.

- ``front/``: the front process (HTTP, registry, budget, worker supervision); never runs model code;
- ``worker/``: a worker process (one per framework slot), which runs ``handlers``;
- ``shared/``: what both run (the wire protocol, the running table, logging, RSS);
- ``diagnostics/``: the offline acceleration report (``python -m server accel-report``);
- ``config``: every variable parsed once, in the front; workers get their part as ``WorkerConfig``.
"""
