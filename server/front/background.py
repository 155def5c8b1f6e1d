"""The front's background tasks: asyncio tasks nobody awaits to the end (reloads, watches, pings).

asyncio keeps only a weak reference to a task, so one nobody holds can vanish mid-flight; and a
task that fails with nobody awaiting it prints a "never retrieved" traceback, late, or nothing.
``Background`` holds each task until it ends, logs what a failed one raised in one line, and
cancels what is left at shutdown.
"""

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class Background:
    def __init__(self, log: logging.Logger):
        self.log = log
        self.tasks: set[asyncio.Task[Any]] = set()

    def start(self, coroutine: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        """Run ``coroutine`` as a task named ``name``, held until it ends."""
        task = asyncio.create_task(coroutine, name=name)
        self.tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and (err := task.exception()) is not None:
            self.log.warning("background task %s failed: %s: %s", task.get_name(), type(err).__name__, err)

    def cancel(self) -> None:
        for task in list(self.tasks):
            task.cancel()
