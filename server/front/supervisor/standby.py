"""Standby workers: one spare worker per warm framework, spawned and imported ahead of need.

Starting a worker means importing its framework: 0.3 s (ONNX Runtime) to 4 s and more
(TensorFlow) before the first model of a framework can load, and again after every worker death.
A standby is a worker that has already paid it and holds no slot. Whenever the pool starts a
slot's worker — the first model of a framework, a replica on a new slot, the replacement of a
dead worker — it takes the framework's standby if there is one (``Standbys.take``): the slot is
served at once, and a new standby starts in the background.

A fork server (one process per framework with the framework imported, forking each worker)
was measured against this and not chosen: forking took 2-45 ms, but a forked PyTorch or
TensorFlow child deadlocks once its parent has run a single operation (their thread pools do
not survive ``fork``), and the forked worker would be the fork server's child, not the front's,
losing the exit status, process group and parent-death signal supervision relies on.

Which frameworks keep a standby is ``WarmPolicy``'s decision, a pure object over an injectable
clock (``tests/fast/front/test_standby.py``); MODEL_SERVER_WARM_FRAMEWORKS and
MODEL_SERVER_WARM_IDLE_SECONDS set it. A standby never costs a model its memory: it starts only
when the budget has room for it, the service drops standbys before it would refuse a load
(``drop``), and the pool counts their processes in its pids, so the budget sees them.
"""

import asyncio
import dataclasses
import importlib.util
import logging
import time
from collections.abc import Callable, Iterable, Sequence

import handlers
from server.front import metrics
from server.front.background import Background
from server.front.supervisor.process import WorkerProcess
from server.shared.protocol import WorkerConfig

log = logging.getLogger("standby")

# auto warms every installed framework at start, cheapest import first, so that the quick ones are
# ready soonest (measured import here: ONNX Runtime 0.24 s, scikit-learn 1.3, XGBoost 2.0, Prophet
# 2.0, PyTorch 2.7, TensorFlow 4-11 s).
WARM_ORDER = ("onnx", "sklearn", "xgboost", "prophet", "pytorch", "tensorflow")
CHECK_SECONDS = 30.0  # how often idle standbys are looked for (less when the idle time is short)


def installed(frameworks: Iterable[str] = WARM_ORDER) -> list[str]:
    """The frameworks whose modules this Python can import (looked up, not imported: top-level
    names only, since finding ``a.b`` imports ``a``)."""
    found = []
    for name in frameworks:
        modules = {module.split(".")[0] for module in handlers.get(name).imports} | ({"prophet"} if name == "prophet" else set())
        try:
            if all(importlib.util.find_spec(module) is not None for module in modules):
                found.append(name)
        except (ImportError, ValueError):
            continue
    return found


class WarmPolicy:
    """Which frameworks keep a standby worker.

    ``none``: none. A list: those, always. ``auto``: every installed framework at start (those of
    models under the models root first). In single-model mode only the model's framework, and
    only once the model has loaded, so that /ping does not wait behind a second import. Under ``auto`` a framework keeps its standby while one of its
    workers holds a model, or while it was used (a worker of it started) within the idle time; a
    framework nobody uses loses its standby that long after the start, so its import is not paid
    for ever. Used again, it is warmed again.
    """

    def __init__(self, mode: str, listed: Sequence[str], idle_seconds: float, multi_model: bool,
                 clock: Callable[[], float] = time.monotonic):
        self.mode = mode  # "auto", "none" or "list"
        self.listed = tuple(listed)
        self.idle_seconds = idle_seconds
        self.multi_model = multi_model
        self.clock = clock
        self.last_used: dict[str, float] = {}

    def initial(self, installed: Sequence[str], found: Sequence[str]) -> list[str]:
        """The frameworks to warm at start, in order: ``found`` (of models under the models root)
        first. Under auto each counts as used now, so that its idle time starts with the server."""
        if self.mode == "none":
            return []
        if not self.multi_model:
            return []  # single-model mode: the model's framework once it has loaded (``Standbys.loaded``)
        if self.mode == "list":
            return list(self.listed)
        order = [f for f in found if f in installed] + [f for f in installed if f not in found]
        now = self.clock()
        for framework in order:
            self.last_used[framework] = now
        return order

    def used(self, framework: str) -> None:
        """A worker of ``framework`` started (from a standby or not), or its single model loaded."""
        self.last_used[framework] = self.clock()

    def wanted(self, framework: str, models: int) -> bool:
        """Whether ``framework`` should have a standby now; ``models``: how many its workers hold."""
        if self.mode == "none":
            return False
        if self.mode == "list":
            return framework in self.listed
        if models > 0:
            return True
        last = self.last_used.get(framework)
        return last is not None and self.clock() - last < self.idle_seconds

    def replenish_after_start(self, framework: str, adopted: bool) -> bool:
        """Whether a worker's start should be followed by a new standby. Not after the first start
        of single-model mode, whose /ping waits for that worker: the service warms the model's
        framework once the model is up."""
        if self.mode == "none":
            return False
        if adopted or self.multi_model:
            self.used(framework)
            return self.wanted(framework, 0)
        return False

    def check_seconds(self) -> float:
        return max(0.05, min(CHECK_SECONDS, self.idle_seconds / 4))


class Standbys:
    """The standby workers, at most one per framework, and their life: warm, take, drop, stop."""

    def __init__(self, policy: WarmPolicy, config: Callable[[str, int], WorkerConfig], env: dict[str, str],
                 startup_timeout: float, models_held: Callable[[str], int]):
        self.policy = policy
        self.config = config
        self.env = env
        self.startup_timeout = startup_timeout
        self.models_held = models_held  # framework -> models its slot workers hold (the pool's)
        self.fits: Callable[[str], bool] = lambda framework: True  # the memory budget's say (set by the service)
        self.workers: dict[str, WorkerProcess] = {}  # framework -> its standby, starting or started
        self.starting: dict[str, asyncio.Task[WorkerProcess | None]] = {}
        self.background = Background(log)
        self.stopping = False

    # ------------------------------------------------------------------ queries

    def pids(self) -> list[int]:
        return [w.pid for w in self.workers.values() if w.alive and w.pid]

    def has(self, framework: str) -> bool:
        """A standby of ``framework`` is up or on its way: a slot start will not import it afresh."""
        return framework in self.workers

    # ------------------------------------------------------------------ life

    def start(self, found: Sequence[str] = ()) -> None:
        """Warm the policy's frameworks, one at a time (imports side by side would only compete
        for the cores), and look for idle standbys from then on."""
        auto = self.policy.mode == "auto" and self.policy.multi_model
        order = self.policy.initial(installed() if auto else (), found)
        if order:
            self.background.start(self._warm_in_turn(order), "warm")
        if self.policy.mode == "auto":
            self.background.start(self._retire_idle(), "retire-idle-standbys")

    async def _warm_in_turn(self, order: Sequence[str]) -> None:
        for framework in order:
            task = self.warm(framework)
            if task is not None:
                await asyncio.shield(task)

    def warm(self, framework: str) -> "asyncio.Task[WorkerProcess | None] | None":
        """Start ``framework``'s standby unless it has one, the policy does not want it, or the
        memory budget has no room for it."""
        if self.stopping or framework in self.workers:
            return self.starting.get(framework)
        if not self.policy.wanted(framework, self.models_held(framework)):
            return None
        if not self.fits(framework):
            log.info("no %s standby: the memory budget has no room for one", framework)
            return None
        config = dataclasses.replace(self.config(framework, 0), name=f"{framework}-standby")
        worker = WorkerProcess(config, -1, self.env)
        self.workers[framework] = worker
        task = self.starting[framework] = self.background.start(self._spawn(worker), f"standby-{framework}")
        return task

    async def _spawn(self, worker: WorkerProcess) -> WorkerProcess | None:
        framework = worker.framework
        try:
            await worker.start(self.startup_timeout)
        except RuntimeError as err:
            if self.workers.get(framework) is worker and not self.stopping:  # not killed by drop or stop
                log.error("the %s standby did not start: %s", framework, err)
            self._forget(worker)
            return None
        finally:
            self.starting.pop(framework, None)
        if self.workers.get(framework) is not worker or self.stopping:  # dropped while it started
            await worker.stop()
            return None
        worker.exited.add_done_callback(lambda _: self._forget(worker))
        metrics.standby_workers.labels(framework).set(1)
        log.info("%s standby ready (pid %s, import %.2fs)", framework, worker.pid, worker.import_seconds)
        return worker

    def _forget(self, worker: WorkerProcess) -> None:
        if self.workers.get(worker.framework) is worker:
            del self.workers[worker.framework]
            metrics.standby_workers.labels(worker.framework).set(0)
            if worker.pid and not worker.alive and worker.import_seconds:
                log.warning("the %s standby (pid %s) died: %s", worker.framework, worker.pid, worker.exit_description())

    async def take(self, framework: str) -> WorkerProcess | None:
        """The framework's standby for a slot, awaited if still importing; None if there is none
        (or it failed). The taker places it in its slot and tells ``started``."""
        worker = self.workers.get(framework)
        if worker is None:
            return None
        task = self.starting.get(framework)
        if task is not None:
            await asyncio.shield(task)
        if self.workers.get(framework) is not worker or not worker.alive:
            return None
        del self.workers[framework]
        metrics.standby_workers.labels(framework).set(0)
        log.info("the %s standby (pid %s) takes a slot", framework, worker.pid)
        return worker

    def started(self, framework: str, adopted: bool) -> None:
        """A slot's worker of ``framework`` has started (``adopted``: it was the standby)."""
        if self.policy.replenish_after_start(framework, adopted):
            self.warm(framework)

    def loaded(self, framework: str) -> None:
        """Single-model mode: the model is up; now its framework gets a standby (under auto)."""
        self.policy.used(framework)
        self.warm(framework)

    async def drop(self, keep: str | None = None) -> bool:
        """Stop every standby but ``keep``'s, so that their memory goes to a load instead of a 507.
        Whether any was dropped."""
        dropped = [w for f, w in self.workers.items() if f != keep]
        for worker in dropped:
            self._forsake(worker, "to make room for a load")
        # Killed, not asked, and awaited: a standby holds nothing, and its memory is free once it has exited.
        await asyncio.gather(*(w.kill() for w in dropped), return_exceptions=True)
        return bool(dropped)

    def _forsake(self, worker: WorkerProcess, why: str) -> None:
        """Take ``worker`` out of the standbys (one still starting its process is stopped by
        ``_spawn`` once it has); the caller ends it."""
        del self.workers[worker.framework]
        metrics.standby_workers.labels(worker.framework).set(0)
        log.info("stopping the %s standby (pid %s) %s", worker.framework, worker.pid, why)

    def _retire(self, worker: WorkerProcess, why: str) -> None:
        """Take ``worker`` out of the standbys and end it in the background (one still importing
        is killed, a ready one stopped)."""
        self._forsake(worker, why)
        if worker.process is not None:
            self.background.start(worker.kill() if worker.framework in self.starting else worker.stop(), f"retire-{worker.name}")

    async def _retire_idle(self) -> None:
        """Stop the standbys of frameworks the policy no longer wants (unused for the idle time)."""
        while not self.stopping:
            await asyncio.sleep(self.policy.check_seconds())
            for framework, worker in list(self.workers.items()):
                if not self.policy.wanted(framework, self.models_held(framework)):
                    self._retire(worker, f"after {self.policy.idle_seconds:g} s unused (MODEL_SERVER_WARM_IDLE_SECONDS)")

    async def stop(self) -> None:
        self.stopping = True
        workers = list(self.workers.values())
        self.workers.clear()
        await asyncio.gather(*(w.stop(grace=1.0) if w.framework not in self.starting else w.kill() for w in workers),
                             return_exceptions=True)
        await asyncio.gather(*self.starting.values(), return_exceptions=True)
        self.background.cancel()
