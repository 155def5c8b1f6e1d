"""Worker supervision: the worker processes of each framework, started on first need, watched,
pinged, and restarted when they die or wedge.

Each framework has ``SAGEMAKER_MODEL_SERVER_WORKERS`` slots (else one per vCPU); a slot's worker
starts the first time a model (or a replica of one) is placed there, so the framework's import
is paid once per slot and only for slots in use. The pool watches
every worker two ways, as uvicorn's supervisor does: its exit (crash, SIGKILL, OOM kill), and a
``ping`` every few seconds that must be answered within the invocation timeout — a worker
whose threads are all stuck, or whose GIL is held by native code, answers nothing and is
killed. Either way the slot gets a new worker (after a backoff if it keeps dying quickly), and
the pool's listener — the model service — is told, so that it can reload the models. A worker
that has lost half its threads to requests past the timeout is replaced while it still serves
(``server.front.supervisor.renewal``), and a load never waits out a long restart backoff (503).

The pool knows nothing of models beyond the names each worker holds (``assign``, ``unassign``;
read by ``server.front.placement`` to choose slots): the registry, the budget and the reloads stay
in ``server.front.service``.
"""

import asyncio
import logging
import time
from typing import Protocol

from handlers.errors import ServingError, Unavailable
from server.config import Settings
from server.front import metrics
from server.front.background import Background
from server.front.placement import Slots, restart_wait
from server.front.supervisor.process import WorkerDied, WorkerProcess
from server.front.supervisor.renewal import Renewals
from server.front.supervisor.standby import Standbys, WarmPolicy
from server.shared.environment import worker_environment
from server.shared.protocol import Op, WorkerConfig

log = logging.getLogger("pool")

QUICK_DEATH_SECONDS = 10.0  # a worker dying sooner than this after its start counts as a crash loop
MAX_BACKOFF_SECONDS = 30.0
PING_INTERVAL_SECONDS = 5.0
RESTART_PATIENCE_SECONDS = 2.0  # a load waits out this much of a restart backoff; more is a 503 at once


class PoolListener(Protocol):
    """What the pool tells its owner."""

    def worker_died(self, worker: WorkerProcess) -> None:
        """``worker`` is gone; its models need a new home (called before the restart)."""

    def worker_replaced(self, dead: WorkerProcess, worker: WorkerProcess) -> None:
        """``worker`` now runs in ``dead``'s slot, with no models loaded yet."""

    async def worker_renewing(self, old: WorkerProcess, worker: WorkerProcess) -> None:
        """``worker`` runs in ``old``'s slot while ``old`` still does, to take its models over
        (``server.front.supervisor.renewal``); ``old`` is stopped once this returns."""


class Backoff:
    """The one restart policy: no wait after a worker that lived a while; after quick deaths
    (or failed starts) 1 s, doubling, at most 30 s."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.until = 0.0  # monotonic time its current wait ends

    def after_death(self, lived_seconds: float) -> float:
        return self.failed() if lived_seconds < QUICK_DEATH_SECONDS else self.reset()

    def failed(self) -> float:
        self.seconds = min(MAX_BACKOFF_SECONDS, max(1.0, self.seconds * 2))
        return self.seconds

    def reset(self) -> float:
        self.seconds = 0.0
        return self.seconds


class WorkerPool:
    def __init__(self, settings: Settings, listener: PoolListener):
        self.settings = settings
        self.listener = listener
        self.slots: dict[tuple[str, int], asyncio.Task[WorkerProcess]] = {}  # (framework, slot) -> task giving its worker
        self.workers: dict[tuple[str, int], WorkerProcess] = {}
        self.backoffs: dict[tuple[str, int], Backoff] = {}
        self.background = Background(log)
        self.stopping = False
        self.env = worker_environment(settings.intra_op_threads, settings.fpmath_mode)
        self.ping_interval = min(PING_INTERVAL_SECONDS, settings.timeout_seconds)
        self.renewals = Renewals(self)
        policy = WarmPolicy(settings.warm_mode, settings.warm_frameworks, settings.warm_idle_seconds, settings.multi_model)
        self.standby = Standbys(policy, self.config, self.env, settings.startup_timeout_seconds, self.models_held)

    def forgive(self, framework: str, slot: int) -> None:
        """The cause of a slot's crash loop is gone (quarantined): its next restart waits as after
        a first death, not out the doubled backoff."""
        backoff = self.backoffs.get((framework, slot))
        if backoff is not None:
            backoff.reset()

    def config(self, framework: str, slot: int) -> WorkerConfig:
        settings = self.settings
        return WorkerConfig(
            framework=framework,
            name=f"{framework}-{slot}",
            threads=settings.worker_threads,
            load_threads=settings.load_threads,
            default_accept=settings.default_accept,
            log_level=settings.log_level,
            program=settings.program,
            intra_op_threads=settings.intra_op_threads,
            packages_root=str(settings.packages_root),
            max_decoded_bytes=int(settings.max_payload_bytes * settings.max_decoded_factor),
            submit_dir=str(settings.submit_dir) if settings.submit_dir else None,
            fpmath_mode=settings.fpmath_mode,
            batching={"max_batch_size": settings.batch_max_size, "max_delay_ms": settings.batch_max_delay_ms},
        )

    # ------------------------------------------------------------------ queries

    def pids(self) -> list[int]:
        """Every worker process's, standbys' and those being replaced included: the memory budget counts them all."""
        return [w.pid for w in self.workers.values() if w.alive and w.pid] + self.renewals.pids() + self.standby.pids()

    def models_held(self, framework: str) -> int:
        return sum(len(w.models) for (f, _), w in self.workers.items() if f == framework and w.alive)

    def started(self, framework: str, slot: int) -> bool:
        return (framework, slot) in self.slots

    def slots_of(self, framework: str) -> Slots[WorkerProcess]:
        """A framework's slots, for ``server.front.placement`` to choose from."""
        count, now = self.settings.slots_per_framework, time.monotonic()
        return Slots(count, {s: w for (f, s), w in self.workers.items() if f == framework},
                     {s for f, s in self.slots if f == framework},
                     {s: b.until - now for (f, s), b in self.backoffs.items() if f == framework and b.until > now})

    # ------------------------------------------------------------------ the models each worker holds

    def assign(self, worker: WorkerProcess, model: str) -> None:
        """``worker`` holds (or is loading) ``model``: counted at once, so that parallel loads spread."""
        worker.models.add(model)

    def unassign(self, worker: WorkerProcess, model: str) -> None:
        worker.models.discard(model)

    # ------------------------------------------------------------------ workers

    async def worker(self, framework: str, slot: int) -> WorkerProcess:
        """The running worker of a slot, started (once, however many loads ask) if need be. One
        waiting out a restart backoff of more than RESTART_PATIENCE_SECONDS is a 503 at once."""
        key = (framework, slot)
        while True:
            task = self.slots.get(key)
            if task is None:
                task = self.slots[key] = self.background.start(self._start(framework, slot), f"start-{framework}-{slot}")
            if not task.done():
                self._refuse_in_backoff(framework, slot)
                await asyncio.wait({task}, timeout=0.1)  # not cancelled by the timeout
                continue
            try:
                worker = task.result()
            except Exception as err:
                if self.slots.get(key) is task:
                    del self.slots[key]
                raise ServingError(f"the {framework} worker failed to start: {err}", 500) from None
            if worker.alive:
                return worker
            await asyncio.sleep(0.05)  # it just died: its watcher is replacing it

    def _refuse_in_backoff(self, framework: str, slot: int) -> None:
        backoff = self.backoffs.get((framework, slot))
        wait = restart_wait(backoff.until - time.monotonic(), RESTART_PATIENCE_SECONDS) if backoff else None
        if wait is not None:
            raise Unavailable(f"the {framework} worker is restarting after repeated crashes; retry in {wait} s", wait)

    async def _start(self, framework: str, slot: int) -> WorkerProcess:
        worker = await self.standby.take(framework)  # its import paid already (server.front.supervisor.standby)
        adopted = worker is not None
        if worker is None:
            worker = WorkerProcess(self.config(framework, slot), slot, self.env)
            await worker.start(self.settings.startup_timeout_seconds)
        else:
            worker.place(slot)
        worker.on_timeout = self.renewals.check
        self.standby.started(framework, adopted)
        self.workers[(framework, slot)] = worker
        metrics.workers_running.labels(framework).inc()
        self.background.start(self._watch(worker, time.monotonic()), f"watch-{worker.name}")
        self.background.start(self._ping(worker), f"ping-{worker.name}")
        return worker

    async def _watch(self, worker: WorkerProcess, started: float) -> None:
        """Wait for a worker's death; then tell the listener and restart its slot."""
        await asyncio.shield(worker.exited)  # cancelling the watch must not cancel the worker's exit
        metrics.workers_running.labels(worker.framework).dec()
        if self.stopping or self.renewals.exited(worker):
            return
        log.error(
            "worker %s (pid %s) died: %s, while working on %s; restarting it and reloading its %d model(s)",
            worker.name, worker.pid, worker.exit_description(),
            ", ".join(sorted(map(repr, worker.death.running))) or "nothing", len(worker.models),
        )
        metrics.worker_restarts.labels(worker.framework).inc()
        self.listener.worker_died(worker)
        self.restart_after(worker, time.monotonic() - started)

    def restart_after(self, dead: WorkerProcess, lived_seconds: float = 0.0) -> None:
        """Restart ``dead``'s slot, after the backoff its life earned."""
        key = (dead.framework, dead.slot)
        backoff = self.backoffs.setdefault(key, Backoff())
        delay = backoff.after_death(lived_seconds)
        self.slots[key] = self.background.start(self._restart(dead, backoff, delay), f"restart-{dead.name}")

    async def _restart(self, dead: WorkerProcess, backoff: Backoff, delay: float) -> WorkerProcess:
        """Start a worker in the dead one's slot, retrying with the backoff until one starts."""
        while True:
            if delay:
                log.warning("waiting %.0fs before restarting worker %s", delay, dead.name)
                backoff.until = time.monotonic() + delay
                await asyncio.sleep(delay)
            try:
                worker = await self._start(dead.framework, dead.slot)
                break
            except RuntimeError as err:
                log.error("restarting worker %s failed: %s", dead.name, err)
                delay = backoff.failed()
        self.listener.worker_replaced(dead, worker)
        return worker

    async def _ping(self, worker: WorkerProcess) -> None:
        """Liveness: a ping unanswered for the invocation timeout means the worker is wedged
        (every thread stuck, or the GIL held by native code). Kill it, so that it is restarted and
        its models reloaded, rather than let its requests time out forever."""
        hang = self.settings.timeout_seconds
        while worker.alive and not self.stopping:
            await asyncio.sleep(self.ping_interval)
            try:
                await worker.call({"op": Op.PING}, timeout=hang)
            except WorkerDied:
                return
            except TimeoutError:
                if not worker.alive or self.stopping or self.renewals.replacing(worker):
                    return  # a worker being replaced is stopped by its renewal
                log.error(
                    "worker %s (pid %s) answered nothing for %.0fs with %d request(s) waiting: killing it",
                    worker.name, worker.pid, hang, len(worker.unanswered),
                )
                metrics.worker_hangs.labels(worker.framework).inc()
                await worker.kill()
                return

    async def stop(self) -> None:
        """Stop every worker (each gets the grace to finish and is reaped with its process group),
        then the pool's own tasks."""
        self.stopping = True
        workers = [*self.workers.values(), *self.renewals.underway]  # and those being replaced
        await asyncio.gather(*(w.stop() for w in workers), self.standby.stop(), return_exceptions=True)
        self.background.cancel()
        log.info("stopped %d worker(s)", len(self.workers))
