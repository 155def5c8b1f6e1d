"""Graceful replacement of a live worker whose threads hang in requests past the timeout.

A request past the invocation timeout answers 504, but its thread may still be stuck in it (a
``predict_fn`` that never returns): that thread is lost to the worker. The ping kills a worker
only once every thread is stuck, and then as a death: whatever else it was running fails. So as
soon as a worker has lost half its threads (``server.front.ledger.replace_for_hung_threads``),
it is replaced while it still serves:

1. a new worker starts in its slot; from then on new loads of the slot go to it;
2. the listener (the model service) loads the old worker's models there and routes their
   requests to it (``worker_renewing``);
3. the old worker's healthy threads finish what they run (each request has its timeout);
4. the old worker is killed, its hung threads with it. Requests that only waited in its inbox
   are sent again to the new worker (``WorkerDied.started`` is False for them), and a model that
   could not be moved is reloaded there as after a death, blamed on no one.

If the old worker dies on its own meanwhile, that is a death as any other (blame, reloads), and
the new worker is its successor; if the new one cannot start, the old one is killed and its
slot restarted as after a hang. Each replacement is logged and counted in
``worker_replacements_total{framework,reason}``.
"""

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from server.front import metrics
from server.front.ledger import Death, replace_for_hung_threads
from server.front.supervisor.process import WorkerProcess

if TYPE_CHECKING:
    from server.front.supervisor.pool import WorkerPool

log = logging.getLogger("pool")

HUNG_THREADS = "hung threads"  # the reason label of a replacement for them
DRAIN_POLL_SECONDS = 0.05


class Renewals:
    """The pool's graceful replacements under way, by the worker each replaces."""

    def __init__(self, pool: "WorkerPool"):
        self.pool = pool
        self.underway: dict[WorkerProcess, asyncio.Event] = {}  # old worker -> set once its exit is handled
        self.retired: set[WorkerProcess] = set()  # old workers the renewal killed (no death of theirs)

    def replacing(self, worker: WorkerProcess) -> bool:
        """Whether ``worker`` is being replaced (the ping leaves it be; its requests that never
        started are sent again to its successor)."""
        return worker in self.underway

    async def going(self, worker: WorkerProcess) -> bool:
        """Whether ``worker``, in whose inbox a request's time ran out before it started, is on its
        way out: being replaced, or not answering its ping either (it is killed for that, a death).
        Then the request never had a thread, and is sent to the successor like those that only
        waited at a death. Waits for the ping due, at most its timeout; False when it answers
        (the worker was only busy: the 504 stands)."""
        return self.replacing(worker) or not await worker.answers_ping() or self.replacing(worker)

    def pids(self) -> list[int]:
        return [w.pid for w in self.underway if w.alive and w.pid]

    def check(self, worker: WorkerProcess) -> None:
        """An invoke of ``worker`` timed out: replace the worker if it has lost half its threads."""
        if worker in self.underway or not worker.alive or self.pool.stopping:
            return
        lost = worker.lost_threads()
        if not replace_for_hung_threads(lost, worker.config.threads):
            return
        self.underway[worker] = asyncio.Event()
        log.warning(
            "worker %s (pid %s) has %d of its %d threads stuck in requests past the %gs timeout: replacing it",
            worker.name, worker.pid, lost, worker.config.threads, self.pool.settings.timeout_seconds,
        )
        metrics.worker_replacements.labels(worker.framework, HUNG_THREADS).inc()
        self.pool.background.start(self._renew(worker), f"renew-{worker.name}")

    def exited(self, worker: WorkerProcess) -> bool:
        """``worker`` has exited; True when a renewal takes care of it (the pool then neither
        reports a death of its own nor restarts the slot: the renewal's worker succeeds it)."""
        handled = self.underway.get(worker)
        if handled is None:
            return False
        if worker in self.retired:
            if worker.models:  # models whose move failed: reloaded on the successor, blamed on no one
                worker.death = Death(worker.death.slot)
                self.pool.listener.worker_died(worker)
        else:  # it died on its own while being replaced: a death like any other
            log.error("worker %s (pid %s) died while being replaced: %s", worker.name, worker.pid, worker.exit_description())
            metrics.worker_restarts.labels(worker.framework).inc()
            self.pool.listener.worker_died(worker)
        handled.set()
        return True

    async def _renew(self, old: WorkerProcess) -> None:
        pool, handled = self.pool, self.underway[old]
        key = (old.framework, old.slot)
        starting = pool.slots[key] = pool.background.start(pool._start(old.framework, old.slot), f"renew-start-{old.name}")
        try:
            new = await asyncio.shield(starting)
        except Exception as err:  # noqa: BLE001 - the start failed: fall back on the restart after a hang
            log.error("the replacement of worker %s did not start (%s): killing it to restart its slot", old.name, err)
            del self.underway[old]
            if old.alive:
                await old.kill()  # its watcher restarts the slot as after any death
            else:
                pool.restart_after(old)  # it died meanwhile, and its death was handled here
            return
        if old.alive:
            await pool.listener.worker_renewing(old, new)
        await self._drain(old)
        if old.alive:
            self.retired.add(old)
            await old.kill()
        await handled.wait()
        del self.underway[old]
        self.retired.discard(old)
        pool.listener.worker_replaced(old, new)  # what it still held is reloaded on its successor
        log.info("worker %s (pid %s) replaced by pid %s", old.name, old.pid, new.pid)

    async def _drain(self, old: WorkerProcess) -> None:
        """Wait while ``old``'s threads run requests whose callers still wait (each has its
        timeout, so at most that long); its lost threads are not waited for."""
        deadline = time.monotonic() + self.pool.settings.timeout_seconds
        while old.alive and old.serving_threads() and time.monotonic() < deadline:
            await asyncio.sleep(DRAIN_POLL_SECONDS)
