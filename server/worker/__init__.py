"""The worker process: one per framework slot, started by the front as ``python -m server.worker``.

It imports one framework, holds every model of that framework and runs their requests on a few
threads. Everything here runs in the worker only; the front never imports this package.

- ``main``: the process's entry, its dispatch table and its reply writing;
- ``inbox``: the frames read and not yet started, grouped by model for batched predicts.
"""
