"""The model service: load, unload, list, describe and invoke models on framework workers.

It owns the registry and the memory budget, and places models on the workers of
``server.front.supervisor.pool``. Routes call it; it calls workers. When the pool reports a worker dead, the
models it held stay listed (as LOADING) and requests to them wait; once the pool has a new
worker in the slot, the service reloads them there.
"""

import asyncio
import logging
import os
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import handlers
from handlers.base import Framework
from handlers.errors import BadInput, Conflict, InsufficientMemory, ModelNotLoaded, ResourceNotFound, ServingError
from server.config import Settings
from server.front import accel_log, metrics, submit_dir
from server.front.budget import MemoryBudget, directory_bytes
from server.front.registry import ModelEntry, Registry, check_name
from server.front.supervisor.pool import WorkerPool
from server.front.supervisor.process import WorkerDied, WorkerProcess
from server.shared.protocol import Op
from server.shared.rss import tree_rss

log = logging.getLogger("service")

SINGLE_MODEL_NAME = "model"
QUARANTINE_DEATHS = 2  # deaths of its worker that quarantine the one model running at each...
QUARANTINE_WINDOW_SECONDS = 600.0  # ...within this long
INTERRUPTED_LOADS = 4  # loads of a model cut short by deaths beside others, within the window, that are retried
REPLICATE_AFTER_SECONDS = 0.5  # how long a model's workers stay saturated before it gets another replica


class ModelService:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.registry = Registry()
        self.budget = MemoryBudget(settings.memory_limit_bytes, settings.memory_headroom_bytes)
        self.pool = WorkerPool(settings, self)
        self.tasks: set[asyncio.Task[Any]] = set()
        self.lost: dict[WorkerProcess, list[ModelEntry]] = {}  # a dead worker -> models to reload on its successor
        self.deaths: dict[tuple[str, int], list[tuple[float, frozenset[str]]]] = {}  # slot -> (when, models running) of its deaths
        self.single_failure: ServingError | None = None  # single-model mode: why its one model did not load
        metrics.memory_limit.set(self.budget.limit)

    # ------------------------------------------------------------------ lifecycle

    def spawn(self, coroutine: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coroutine, name=name)
        self.tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        """Forget a finished background task, logging what it raised (a worker that died under
        an abandoned load's unload, say) in one line rather than as a "never retrieved" traceback."""
        self.tasks.discard(task)
        if not task.cancelled() and (err := task.exception()) is not None:
            log.warning("background task %s failed: %s: %s", task.get_name(), type(err).__name__, err)

    async def start(self) -> None:
        if self.settings.accel_report:  # MODEL_SERVER_ACCEL_REPORT: one log line, in a child process
            self.spawn(accel_log.log_report(log), "accel-report")
        if not self.settings.multi_model:
            self.spawn(self._load_single_model(), "load-single-model")
        elif self.settings.preload:
            self.spawn(self._preload(), "preload")

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await self.pool.stop()

    async def _load_single_model(self) -> None:
        try:
            await self.load(SINGLE_MODEL_NAME, str(self.settings.model_dir), inside_root=False)
        except ServingError as err:
            log.error("the model in %s failed to load (%d): %s", self.settings.model_dir, err.status, err.message)
            self.single_failure = ServingError(f"the model failed to load: {err.message}", 500)

    async def _preload(self) -> None:
        """Load every ``<id>/model`` (or ``<id>``) under the models root, named ``<id>``."""
        root = self.settings.models_root
        found = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        for directory in found:
            target = directory / "model" if (directory / "model").is_dir() else directory
            try:
                await self.load(directory.name, str(target))
            except ServingError as err:
                log.error("preloading %s failed (%d): %s", directory.name, err.status, err.message)
        log.info("preloaded %d of %d model directories", len(self.registry), len(found))

    # ------------------------------------------------------------------ queries

    def ready(self) -> tuple[bool, str]:
        """Whether /ping is healthy: always in multi-model mode, once the model is up otherwise."""
        if self.settings.multi_model:
            return True, ""
        entry = self.registry.get(SINGLE_MODEL_NAME)
        if entry is not None and entry.state == "ready":
            return True, ""
        if entry is not None:
            return False, "the model is loading"
        return False, self.single_failure.message if self.single_failure else "the model is not loaded"

    def describe(self, name: str) -> dict[str, Any]:
        entry = self.registry.get(name)
        if entry is None:
            raise ModelNotLoaded()
        return entry.describe()

    def listing(self, token: str | None, limit: str | None) -> dict[str, Any]:
        entries, next_token = self.registry.page(token, limit)
        answer: dict[str, Any] = {"models": [{"modelName": e.name, "modelUrl": e.url} for e in entries]}
        if next_token:
            answer["nextPageToken"] = next_token
        return answer

    def pids(self) -> list[int]:
        return [os.getpid()] + self.pool.pids()

    def memory_rss(self) -> int:
        return tree_rss(self.pids())

    # ------------------------------------------------------------------ load / unload

    def _resolve(self, url: object, inside_root: bool) -> Path:
        """The model directory ``url`` names. A url the filesystem cannot resolve (a symlink
        loop, a name over the system's limits, text it cannot encode) is the client's: 400."""
        if not isinstance(url, str) or not url or "\x00" in url:
            raise BadInput("url must be a non-empty path string")
        root = self.settings.models_root.resolve()
        try:
            path = (root / url).resolve() if inside_root else Path(url).resolve()
            if inside_root and path != root and root not in path.parents:
                raise BadInput("url is not inside the models root")
            if not path.exists():
                raise ResourceNotFound("url does not exist")
            if not path.is_dir():
                raise ResourceNotFound("url is not a directory")
        except RuntimeError:  # Path.resolve on a symlink loop (Python 3.11)
            raise BadInput("url is a symlink loop") from None
        except (OSError, ValueError) as err:  # ELOOP, ENAMETOOLONG, EACCES; unencodable text
            reason = err.strerror if isinstance(err, OSError) and err.strerror else type(err).__name__
            raise BadInput(f"url cannot be resolved: {reason}") from None
        return path

    async def load(self, name: object, url: object, inside_root: bool = True) -> ModelEntry:
        name = check_name(name)
        path = self._resolve(url, inside_root)
        assert isinstance(url, str)  # _resolve refused anything else
        if self.registry.get(name) is not None:
            raise Conflict("a model with this name is already loaded")
        entry = ModelEntry(name=name, url=url, path=path, framework="unknown")
        self.registry.add(entry)  # holds the name: a concurrent load of it gets 409
        started = time.perf_counter()
        try:
            framework, disk_bytes = self._inspect(path)  # a listing and a few stat calls
            entry.framework = framework.name
            entry.estimate_bytes = int(disk_bytes * framework.memory_factor) + 2**20
            if self.settings.workers_per_framework > 1:  # SAGEMAKER_MODEL_SERVER_WORKERS: one on every slot
                await asyncio.gather(*(self._add_replica(entry, framework, slot)
                                       for slot in range(self.settings.workers_per_framework)))
            else:
                try:
                    await self._add_replica(entry, framework, self.pool.least_filled(framework.name))
                except LoadInterrupted as err:
                    if err.alone or not self._may_retry(entry):
                        raise
                    log.warning("the worker died under the load of %r with more running: loading it again", name)
                    try:
                        await self._add_replica(entry, framework, self.pool.least_filled(framework.name))
                    except LoadInterrupted as again:
                        if again.alone:
                            raise
                        raise ServingError(f"{again.message}, twice, with other models running; retry the load", 503) from None
        except BaseException as err:
            replicas, entry.replicas = entry.replicas, []
            self.registry.remove(entry)  # before any await: no request may route to it now
            for worker in replicas:
                worker.models.discard(entry.name)
            await asyncio.gather(*(self._release(w, entry) for w in replicas), return_exceptions=True)
            failure = err if isinstance(err, ServingError) else ServingError("the load was interrupted", 500)
            entry.failure = failure
            entry.ready.set()
            metrics.load_failures.labels(entry.framework, str(failure.status)).inc()
            log.warning("load of %r failed (%d): %s", name, failure.status, failure.message)
            raise
        seconds = time.perf_counter() - started
        metrics.loading_time.labels(entry.framework).observe(seconds)
        metrics.loaded_models.labels(entry.framework).inc()
        log.info("loaded %r (%s) in %.3fs, ~%.1f MB", name, entry.framework, seconds, entry.memory_bytes / 2**20)
        return entry

    def _inspect(self, path: Path) -> tuple[Framework, int]:
        framework, _ = handlers.detect(path, self.settings.framework, self.settings.program, submit_dir.shared_code(self.settings, path))
        return framework, directory_bytes(path)

    async def _add_replica(self, entry: ModelEntry, framework: Framework, slot: int) -> WorkerProcess:
        """Check the budget, load ``entry`` on the worker of ``slot`` (started if need be), then
        check the budget again with what the load really took. The replica serves from then on.

        A replica whose model was unloaded or quarantined while it loaded is given back (raises
        Superseded); ``entry.replica_loads`` holds a future until then, so that an unload can
        wait for what is loading to be released."""
        need = entry.estimate_bytes
        if not self.pool.started(framework.name, slot):
            need += framework.worker_bytes
        shortfall = self.budget.shortfall(need, self.pids())
        if shortfall:
            raise InsufficientMemory(shortfall)
        self.budget.reserved += need
        try:
            worker = await self.pool.worker(framework.name, slot)  # a restart's backoff may take a while
            self._still_wanted(entry)
        except BaseException:
            self.budget.reserved -= need
            raise
        worker.models.add(entry.name)  # counted at once, so parallel loads spread over slots
        loading = asyncio.get_running_loop().create_future()
        entry.replica_loads.add(loading)
        header: dict[str, Any] | None = None
        try:
            try:
                header = await self._call_load(worker, entry)
            finally:
                self.budget.reserved -= need
            over = self.budget.overrun(self.pids())
            if over:  # the model took far more than its files promised (a model_fn that allocates, say)
                taken = header.get("memory_bytes", 0) / 2**20
                log.warning("%r took %.0f MB once loaded: over the memory budget, unloading it", entry.name, taken)
                raise InsufficientMemory(f"the model took {taken:.0f} MB once loaded; {over}")
            self._still_wanted(entry)
        except BaseException:
            worker.models.discard(entry.name)
            if header is not None:
                await self._release(worker, entry)  # it loaded: give it back
            raise
        finally:
            entry.replica_loads.discard(loading)
            loading.set_result(None)
        entry.replicas.append(worker)
        entry.mark_ready(header.get("memory_bytes", 0), header.get("seconds", 0.0))
        return worker

    def _still_wanted(self, entry: ModelEntry) -> None:
        """Superseded when ``entry`` was unloaded or quarantined while a replica of it was loading."""
        if self.registry.get(entry.name) is not entry or entry.state == "quarantined":
            raise Superseded("the model was unloaded or quarantined while it loaded")

    async def _call_load(self, worker: WorkerProcess, entry: ModelEntry) -> dict[str, Any]:
        """The worker's answer to a load, within MODEL_SERVER_LOAD_TIMEOUT_SECONDS and a share of its
        load threads. A load past its timeout is abandoned: its name is free again at once."""
        timeout = self.settings.load_timeout_seconds
        try:
            async with asyncio.timeout(timeout):
                async with worker.load_slots.hold():
                    self._still_wanted(entry)  # unloaded while it waited for a slot
                    header, _ = await worker.call({"op": Op.LOAD, "key": entry.name, "path": str(entry.path), "copy": entry.copy})
        except TimeoutError:
            if worker.alive:
                self.spawn(worker.call({"op": Op.UNLOAD, "key": entry.name, "copy": entry.copy, "abandon_loads": True}),
                           "abandon-load")
            raise ServingError(
                f"the model did not load within {timeout:g} s (MODEL_SERVER_LOAD_TIMEOUT_SECONDS); the load was abandoned",
                504,
            ) from None
        except WorkerDied as died:
            raise LoadInterrupted(f"the worker died while loading the model ({died.worker.exit_description()})",
                                  alone=died.worker.died_with <= {entry.name}) from None
        if header["status"] != 200:
            raise self._memory_checked(failure_of(header, "the model failed to load"), loading=True)
        return header

    def _memory_checked(self, failure: ServingError, loading: bool) -> ServingError:
        """A MemoryError in a worker is a 507 only when the budget really says no; otherwise the
        model or request asked for more than can ever be had (a pickle claiming 1 PiB, an array of
        2**40 rows), and the platform must not evict healthy models for it."""
        if failure.status != 507 or self.budget.shortfall(0, self.pids()):
            return failure
        if loading:
            return ServingError(f"the model failed to load: it asked for more memory than can be had ({failure.message})", 500)
        return BadInput(f"the request needs more memory than can be had ({failure.message})")

    async def _release(self, worker: WorkerProcess, entry: ModelEntry) -> None:
        """Give back ``entry``'s copy on ``worker``: only that copy, should the name have been loaded again since."""
        if worker.alive:
            try:
                await worker.call({"op": Op.UNLOAD, "key": entry.name, "copy": entry.copy})
            except WorkerDied:
                pass  # its memory went with the worker

    async def unload(self, name: str) -> None:
        entry = self.registry.get(name)
        if entry is None:
            raise ModelNotLoaded()
        if entry.state == "loading" and not entry.loaded_at:
            self._abandon(entry)
            return
        started = time.perf_counter()
        self.registry.remove(entry)
        replicas, entry.replicas = entry.replicas, []
        for worker in replicas:
            worker.models.discard(name)
        metrics.loaded_models.labels(entry.framework).dec()
        entry.ready.set()  # requests waiting on a reload: it is not coming
        # Replicas loading now (a reload after a crash) give themselves back when they finish.
        await asyncio.gather(*(self._release(worker, entry) for worker in replicas), *list(entry.replica_loads))
        metrics.unloading_time.observe(time.perf_counter() - started)
        log.info("unloaded %r in %.3fs", name, time.perf_counter() - started)

    def _abandon(self, entry: ModelEntry) -> None:
        """Unload a model whose first load is under way, at once: its name is free now, requests
        waiting on it answer 404, and its workers are told to abandon the load, which answers its
        LoadModel (404) and drops whatever it makes if it ever ends. A load's ``model_fn`` may never
        return: waiting for it would hold the DELETE for the whole load timeout."""
        self.registry.remove(entry)
        entry.ready.set()
        for worker in self.pool.workers.values():
            if worker.alive and worker.framework == entry.framework:  # the load's worker among them
                self.spawn(worker.call({"op": Op.UNLOAD, "key": entry.name, "copy": entry.copy, "abandon_loads": True}),
                           f"abandon-{entry.name}")
        log.info("unloaded %r while it loaded: its load is abandoned", entry.name)

    # ------------------------------------------------------------------ invoke

    async def invoke(self, name: str, body: bytes, headers: dict[str, str]) -> tuple[dict[str, Any], bytes]:
        """Run one request on the model's worker: (reply header, body). ``headers`` are lower-case.

        A request that was only waiting in a worker's inbox when the worker died (its model was
        not running there) is sent again once the model is reloaded: it never started, so the
        client need not see the crash of a neighbour."""
        entry = self.registry.get(name)
        if entry is None:
            metrics.cache_misses.inc()
            raise self.single_failure or ModelNotLoaded()
        timeout = self.settings.timeout_seconds
        started = time.perf_counter()
        header = {"op": Op.INVOKE, "key": name, "headers": headers}
        status = 500
        try:
            if entry.state == "ready":
                metrics.cache_hits.inc()
            else:
                metrics.cache_misses.inc()
                await self._until_ready(entry, timeout)
                metrics.loading_wait_time.observe(time.perf_counter() - started)
            entry.invocations += 1
            entry.last_invoked_at = time.time()
            while True:
                worker = self._route(entry)
                try:
                    reply, out = await worker.call(header, body, timeout=self._left(started))
                    break
                except WorkerDied as died:
                    if died.started:
                        raise
                    log.info("a request to %r waited in %s when it died: sending it again after the reload", name, worker.name)
                    await self._until_reloaded(entry, worker, started)
            status = reply["status"]
            if "batch" in reply:
                metrics.invocation_batch_size.labels(entry.framework).observe(reply["batch"])
            if status != 200:
                failure = self._memory_checked(failure_of(reply, "prediction failed"), loading=False)
                status = failure.status
                raise failure
            return reply, out
        except TimeoutError:
            status = 504
            raise ServingError(f"the prediction took longer than {timeout:g} s", 504) from None
        except WorkerDied as died:
            status = 503
            raise ServingError(
                f"the worker serving this model died during the request ({died.worker.exit_description()}); "
                "it is being restarted and the model reloaded", 503,
            ) from None
        except ServingError as err:
            status = err.status
            raise
        finally:
            metrics.invocations.labels(entry.framework, str(status)).inc()
            metrics.invocation_latency.labels(entry.framework).observe(time.perf_counter() - started)

    async def _until_reloaded(self, entry: ModelEntry, dead: WorkerProcess, started: float) -> None:
        """Wait for the model's reload after ``dead`` died. The pool hears of the death a moment
        after the calls in flight fail: until it has taken the dead replica away, the model still
        looks ready."""
        while dead in entry.replicas and self.registry.get(entry.name) is entry:
            if self._left(started) <= 0.001:
                raise ServingError("the model is being reloaded after its worker died; retry shortly", 503)
            await asyncio.sleep(0.01)
        await self._until_ready(entry, self._left(started))

    def _left(self, started: float) -> float:
        return max(0.001, self.settings.timeout_seconds - (time.perf_counter() - started))

    async def _until_ready(self, entry: ModelEntry, timeout: float) -> None:
        """Wait for a model's (re)load; the error its request meets if it fails, is quarantined,
        or is unloaded meanwhile."""
        try:
            await asyncio.wait_for(entry.ready.wait(), timeout)
        except TimeoutError:
            raise ServingError("the model is still loading; retry shortly", 503) from None
        if entry.state == "quarantined" and entry.failure is not None:
            raise entry.failure
        if entry.state != "ready" or not entry.replicas or self.registry.get(entry.name) is not entry:
            raise ModelNotLoaded()  # its load failed, or it was unloaded while this request waited

    # ------------------------------------------------------------------ replicas

    def _route(self, entry: ModelEntry) -> WorkerProcess:
        """The replica whose worker has the fewest outstanding requests (the platform's
        LEAST_OUTSTANDING_REQUESTS, inside the container). A model whose every replica's worker
        stays saturated (MODEL_SERVER_REPLICATE_AT outstanding) for REPLICATE_AFTER_SECONDS gets
        another replica on another worker of its framework, while there is a slot for one."""
        replicas = entry.replicas
        if not replicas:
            raise ModelNotLoaded()  # a load that failed after serving from its first replica
        worker: WorkerProcess = replicas[0] if len(replicas) == 1 else min(replicas, key=lambda w: len(w.pending))
        if self.settings.auto_replicate:
            outstanding = len(worker.pending)
            if outstanding >= self.settings.replicate_at:
                now = time.monotonic()
                if entry.hot_since is None:
                    entry.hot_since = now
                elif now - entry.hot_since >= REPLICATE_AFTER_SECONDS and not entry.replicating:
                    slot = self.pool.spare_slot(entry.framework, {w.slot for w in replicas})
                    if slot is not None:
                        entry.replicating = True
                        self.spawn(self._replicate(entry, slot), f"replicate-{entry.name}")
            elif outstanding * 2 < self.settings.replicate_at:  # hysteresis: answers in transit dip it
                entry.hot_since = None
        return worker

    async def _replicate(self, entry: ModelEntry, slot: int) -> None:
        try:
            worker = await self._add_replica(entry, handlers.get(entry.framework), slot)
            log.info("%r is hot: replica %d on %s", entry.name, len(entry.replicas), worker.name)
            metrics.replicas_added.labels(entry.framework).inc()
        except ServingError as err:
            log.warning("could not add a replica of %r (%d): %s", entry.name, err.status, err.message)
        finally:
            entry.replicating = False
            entry.hot_since = None
        if self.registry.get(entry.name) is not entry:  # unloaded meanwhile: take the replica back
            await asyncio.gather(*(self._release(w, entry) for w in entry.replicas))

    # ------------------------------------------------------------------ the pool's news

    def worker_died(self, worker: WorkerProcess) -> None:
        """Its models lose that replica; one left with none stays listed, as LOADING, and requests
        to it wait for the reload. A model that was running (not merely waiting) when its worker died
        for the second time within QUARANTINE_WINDOW_SECONDS is quarantined instead: not
        reloaded, answering a 500 that says so until it is unloaded and loaded again, so that its
        neighbours stop paying for it."""
        now = time.monotonic()
        lost = []
        # The blame is shared among the models it was running invokes of (else loads of): the model
        # at fault is running at every one of its deaths, a neighbour only at some.
        suspects = worker.died_invoking or worker.died_with
        culprit = self._running_at_every_death(worker, suspects, now)
        for entry in self.registry.entries():
            if worker not in entry.replicas:
                continue
            entry.replicas.remove(worker)
            if entry.name in suspects:
                entry.deaths = [d for d in entry.deaths if now - d[0] < QUARANTINE_WINDOW_SECONDS] + [(now, 1 / len(suspects))]
                if entry.name == culprit or sum(share for _, share in entry.deaths) >= QUARANTINE_DEATHS - 1e-9:
                    self._quarantine(entry, worker)
                    continue
            lost.append(entry)
            if not entry.replicas:
                entry.state = "loading"
                entry.ready.clear()
        self.lost.setdefault(worker, []).extend(lost)  # beside reloads its death interrupted

    def _running_at_every_death(self, worker: WorkerProcess, suspects: set[str], now: float) -> str | None:
        """The one model that was running at each of its slot's latest deaths (two at least, within
        the window), if there is one: under load several models run at every death, but only the
        one at fault at all of them. The slot's history starts again once it is named."""
        slot = (worker.framework, worker.slot)
        history = [d for d in self.deaths.get(slot, []) if now - d[0] < QUARANTINE_WINDOW_SECONDS] + [(now, frozenset(suspects))]
        self.deaths[slot] = history
        common = set(suspects)
        for _, earlier in reversed(history[:-1]):
            common &= earlier
            if len(common) == 1:
                del self.deaths[slot]
                self.pool.forgive(*slot)  # its crash loop is over: the restart need not wait out the backoff
                return next(iter(common))
            if not common:
                return None
        return None

    def _may_retry(self, entry: ModelEntry) -> bool:
        """Whether a load interrupted by a worker's death with others running (the model may be
        innocent) is tried again: at most INTERRUPTED_LOADS times within the window, so that a
        model which crashes its loads beside others cannot loop for ever."""
        now = time.monotonic()
        entry.interrupted = [t for t in entry.interrupted if now - t < QUARANTINE_WINDOW_SECONDS] + [now]
        return len(entry.interrupted) <= INTERRUPTED_LOADS

    def _quarantine(self, entry: ModelEntry, worker: WorkerProcess) -> None:
        entry.state = "quarantined"
        entry.failure = ServingError(
            f"this model was running at {len(entry.deaths)} deaths of its worker "
            f"(last: {worker.exit_description()}); it is quarantined: unload it and load it again to retry", 500,
        )
        replicas, entry.replicas = entry.replicas, []
        for other in replicas:
            other.models.discard(entry.name)
            self.spawn(self._release(other, entry), f"quarantine-{entry.name}")
        entry.ready.set()
        metrics.quarantines.labels(entry.framework).inc()
        log.error("quarantined %r: running at %d deaths of its %s worker (blame %.1f)", entry.name, len(entry.deaths),
                  entry.framework, sum(share for _, share in entry.deaths))

    def worker_replaced(self, dead: WorkerProcess, worker: WorkerProcess) -> None:
        orphans = self.lost.pop(dead, [])
        self.spawn(self._reload(worker, orphans), f"reload-{worker.name}")

    async def _reload(self, worker: WorkerProcess, orphans: list[ModelEntry]) -> None:
        framework = handlers.get(worker.framework)

        async def reload(entry: ModelEntry) -> None:
            if self.registry.get(entry.name) is not entry or entry.state == "quarantined":
                return
            try:
                await self._add_replica(entry, framework, worker.slot)
                log.info("reloaded %r on %s", entry.name, worker.name)
            except Superseded:
                return
            except ServingError as err:
                if isinstance(err, LoadInterrupted) and not err.alone and self._may_retry(entry):
                    log.warning("the worker died under the reload of %r, with more running: it waits for the next", entry.name)
                    self.lost.setdefault(worker, []).append(entry)
                    return
                if entry.replicas:
                    log.warning("reloading a replica of %r failed (%d): %s", entry.name, err.status, err.message)
                    return
                self.registry.remove(entry)
                metrics.loaded_models.labels(entry.framework).dec()
                entry.failure = err
                entry.ready.set()
                log.error("reloading %r after the crash failed (%d): %s; it is unloaded", entry.name, err.status, err.message)

        # Models blamed for recent deaths come back last, once the others have: a request to one
        # that kills the worker again then cuts no neighbour's reload short.
        now = time.monotonic()
        suspect = [any(now - t < QUARANTINE_WINDOW_SECONDS for t, _ in e.deaths) for e in orphans]
        await asyncio.gather(*(reload(e) for e, s in zip(orphans, suspect) if not s))
        await asyncio.gather(*(reload(e) for e, s in zip(orphans, suspect) if s))


class Superseded(ServingError):
    """A replica's load finished after its model was unloaded or quarantined: it was given back."""

    status = 404


class LoadInterrupted(ServingError):
    """The worker died under a load. ``alone``: the load was all the worker was running, so the
    model is the likely cause; otherwise a neighbour may have been."""

    def __init__(self, message: str, alone: bool):
        super().__init__(message, 500)
        self.alone = alone


def failure_of(reply: dict[str, Any], fallback: str) -> ServingError:
    """The error a worker's reply stands for, as the worker described it."""
    return ServingError(reply.get("error", fallback), reply["status"], reply.get("type"))
