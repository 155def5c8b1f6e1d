"""Code both processes run: the frames between front and worker (``protocol``), the table of
what a worker's threads are running (``running``, written by the worker, read by the front after
a death), logging set-up (``logs``) and resident-memory reads (``rss``). It imports nothing else
from ``server``, so that neither side pulls in the other through it."""
