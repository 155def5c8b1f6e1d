"""The model service: load, unload, list, describe and invoke models on framework workers.

A façade: the registry (which models exist), the memory budget, placement (which worker a model
or a request goes to, ``server.front.placement``) and the fault ledger (whom a worker's death is
blamed on, ``server.front.ledger``) each decide their part; the service carries the decisions
out on the workers of ``server.front.supervisor.pool``. Routes call it; it calls workers. When
the pool reports a worker dead, the models it held stay listed (as LOADING, unless the ledger
quarantines them) and requests to them wait; once the pool has a new worker in the slot, the
service reloads them there.
"""

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any

import handlers
from handlers.base import Framework
from handlers.errors import BadInput, Conflict, InsufficientMemory, ModelNotLoaded, ResourceNotFound, ServingError
from server.config import Settings
from server.front import accel_log, metrics, placement, submit_dir
from server.front.background import Background
from server.front.budget import MemoryBudget, directory_bytes
from server.front.ledger import FaultLedger
from server.front.registry import ModelEntry, Registry, check_name
from server.front.supervisor.pool import WorkerPool
from server.front.supervisor.process import CallTimedOut, WorkerDied, WorkerProcess
from server.shared.protocol import Op
from server.shared.rss import tree_rss

log = logging.getLogger("service")

SINGLE_MODEL_NAME = "model"


class ModelService:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.registry = Registry()
        self.budget = MemoryBudget(settings.memory_limit_bytes, settings.memory_headroom_bytes)
        self.pool = WorkerPool(settings, self)
        self.ledger = FaultLedger()
        self.router = placement.Router(settings.auto_replicate, settings.replicate_at)
        self.background = Background(log)
        self.lost: dict[WorkerProcess, list[ModelEntry]] = {}  # a dead worker -> models to reload on its successor
        self.single_failure: ServingError | None = None  # single-model mode: why its one model did not load
        metrics.memory_limit.set(self.budget.limit)
        self.pool.standby.fits = self._standby_fits

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self.settings.accel_report:  # MODEL_SERVER_ACCEL_REPORT: one log line, in a child process
            self.background.start(accel_log.log_report(log), "accel-report")
        if not self.settings.multi_model:
            self.background.start(self._load_single_model(), "load-single-model")
        elif self.settings.preload:
            self.background.start(self._preload(), "preload")
        self.pool.standby.start(self._frameworks_under_root() if self.settings.multi_model else ())

    async def stop(self) -> None:
        self.background.cancel()
        await self.pool.stop()

    async def _load_single_model(self) -> None:
        try:
            entry = await self.load(SINGLE_MODEL_NAME, str(self.settings.model_dir), inside_root=False)
            self.pool.standby.loaded(entry.framework)  # a spare for its worker, now that /ping is healthy
        except ServingError as err:
            log.error("the model in %s failed to load (%d): %s", self.settings.model_dir, err.status, err.message)
            self.single_failure = ServingError(f"the model failed to load: {err.message}", 500)

    def _frameworks_under_root(self, most: int = 64) -> list[str]:
        """The frameworks of the models under the models root (of the first ``most`` directories),
        most common first: they are warmed first."""
        root = self.settings.models_root
        counts: dict[str, int] = {}
        try:
            found = sorted(p for p in root.iterdir() if p.is_dir())[:most] if root.is_dir() else []
        except OSError:
            return []
        for directory in found:
            target = directory / "model" if (directory / "model").is_dir() else directory
            try:
                name = self._inspect(target)[0].name
            except (ServingError, OSError):
                continue
            counts[name] = counts.get(name, 0) + 1
        return sorted(counts, key=lambda name: -counts[name])

    def _standby_fits(self, framework: str) -> bool:
        """Whether a standby of ``framework`` fits the memory budget beside what is loaded and loading."""
        return self.budget.shortfall(handlers.get(framework).worker_bytes, self.pids()) is None

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

    def health(self) -> tuple[bool, str]:
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
            entry.estimate_bytes = self.budget.estimate(str(path), int(disk_bytes * framework.memory_factor) + 2**20)
            if self.settings.replicas_per_model > 1:  # SAGEMAKER_MODEL_SERVER_WORKERS: one on every slot
                await asyncio.gather(*(self._add_replica(entry, framework, slot)
                                       for slot in range(self.settings.replicas_per_model)))
            else:
                try:
                    await self._add_replica(entry, framework, placement.slot_for_new_model(self.pool.slots_of(framework.name)))
                except LoadInterrupted as err:
                    if not self.ledger.retry_load(name, err.alone):
                        raise
                    log.warning("the worker died under the load of %r with more running: loading it again", name)
                    try:
                        await self._add_replica(entry, framework, placement.slot_for_new_model(self.pool.slots_of(framework.name)))
                    except LoadInterrupted as again:
                        if again.alone:
                            raise
                        raise ServingError(f"{again.message}, twice, with other models running; retry the load", 503) from None
        except BaseException as err:
            replicas, entry.replicas = entry.replicas, []
            self._forget(entry)  # before any await: no request may route to it now
            for worker in replicas:
                self.pool.unassign(worker, entry.name)
            await asyncio.gather(*(self._release(w, entry) for w in replicas), return_exceptions=True)
            failure = err if isinstance(err, ServingError) else ServingError("the load was interrupted", 500)
            entry.failure = failure
            entry.settled.set()
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
        adopting = not self.pool.started(framework.name, slot) and self.pool.standby.has(framework.name)
        if not self.pool.started(framework.name, slot) and not adopting:
            need += framework.worker_bytes
        try:
            reservation = await self.budget.admit(need, self.pids)  # 507 unless it fits; near the limit, one load at a time
        except InsufficientMemory:
            # Standbys give way to models: dropped (but the one about to take the slot) before a 507.
            if not await self.pool.standby.drop(keep=framework.name if adopting else None):
                raise
            reservation = await self.budget.admit(need, self.pids)
        try:
            worker = await self.pool.worker(framework.name, slot)  # a restart's backoff may take a while
            self._still_wanted(entry)
        except BaseException:
            reservation.release()
            raise
        self.pool.assign(worker, entry.name)  # counted at once, so parallel loads spread over slots
        loading = asyncio.get_running_loop().create_future()
        entry.replica_loads.add(loading)
        header: dict[str, Any] | None = None
        try:
            try:
                header = await self._call_load(worker, entry)
            finally:
                reservation.release()  # measured (in the worker's RSS from now on) or failed
            self.budget.remember(str(entry.path), header.get("memory_bytes", 0))
            over = self.budget.overrun(self.pids())
            if over and await self.pool.standby.drop():
                over = self.budget.overrun(self.pids())
            if over:  # the model took far more than its files promised (a model_fn that allocates, say)
                taken = header.get("memory_bytes", 0) / 2**20
                log.warning("%r took %.0f MB once loaded: over the memory budget, unloading it", entry.name, taken)
                raise InsufficientMemory(f"the model took {taken:.0f} MB once loaded; {over}")
            self._still_wanted(entry)
        except BaseException:
            self.pool.unassign(worker, entry.name)
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
        if self.registry.get(entry.name) is not entry or self.ledger.quarantined(entry.name):
            raise Superseded("the model was unloaded or quarantined while it loaded")

    async def _call_load(self, worker: WorkerProcess, entry: ModelEntry) -> dict[str, Any]:
        """The worker's answer to a load, within MODEL_SERVER_LOAD_TIMEOUT_SECONDS and a share of its
        load threads. A load past its timeout is abandoned: its name is free again at once."""
        timeout = self.settings.load_timeout_seconds
        try:
            async with asyncio.timeout(timeout):
                async with worker.load_permits.hold():
                    self._still_wanted(entry)  # unloaded while it waited for a slot
                    header, _ = await worker.call({"op": Op.LOAD, "key": entry.name, "path": str(entry.path), "copy": entry.copy})
        except TimeoutError:
            if worker.alive:
                self.background.start(worker.call({"op": Op.UNLOAD, "key": entry.name, "copy": entry.copy, "abandon_loads": True}), "abandon-load")
            raise ServingError(
                f"the model did not load within {timeout:g} s (MODEL_SERVER_LOAD_TIMEOUT_SECONDS); the load was abandoned",
                504,
            ) from None
        except WorkerDied as died:
            raise LoadInterrupted(f"the worker died while loading the model ({died.worker.exit_description()})",
                                  alone=died.worker.death.alone(entry.name)) from None
        if header["status"] != 200:
            raise self._memory_checked(failure_of(header, "the model failed to load"), loading=True)
        return header

    def _memory_checked(self, failure: ServingError, loading: bool) -> ServingError:
        """A MemoryError in a worker is a 507 only when the budget really says no; otherwise the
        model or request asked for more than can ever be had (a pickle claiming 1 PiB, an array of
        2**40 rows), and the platform must not evict healthy models for it."""
        standbys = set(self.pool.standby.pids())  # they would be dropped before a refusal: not counted
        if failure.status != 507 or self.budget.shortfall(0, [p for p in self.pids() if p not in standbys]):
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
        self._forget(entry)
        replicas, entry.replicas = entry.replicas, []
        for worker in replicas:
            self.pool.unassign(worker, name)
        metrics.loaded_models.labels(entry.framework).dec()
        entry.settled.set()  # requests waiting on a reload: it is not coming
        # Replicas loading now (a reload after a crash) give themselves back when they finish.
        await asyncio.gather(*(self._release(worker, entry) for worker in replicas), *list(entry.replica_loads))
        metrics.unloading_time.observe(time.perf_counter() - started)
        log.info("unloaded %r in %.3fs", name, time.perf_counter() - started)

    def _abandon(self, entry: ModelEntry) -> None:
        """Unload a model whose first load is under way, at once: its name is free now, requests
        waiting on it answer 404, and its workers are told to abandon the load, which answers its
        LoadModel (404) and drops whatever it makes if it ever ends. A load's ``model_fn`` may never
        return: waiting for it would hold the DELETE for the whole load timeout."""
        self._forget(entry)
        entry.settled.set()
        for worker in self.pool.workers.values():
            if worker.alive and worker.framework == entry.framework:  # the load's worker among them
                self.background.start(worker.call({"op": Op.UNLOAD, "key": entry.name, "copy": entry.copy, "abandon_loads": True}),
                                      f"abandon-{entry.name}")
        log.info("unloaded %r while it loaded: its load is abandoned", entry.name)

    # ------------------------------------------------------------------ invoke

    async def invoke(self, name: str, body: bytes, headers: dict[str, str]) -> tuple[dict[str, Any], bytes]:
        """Run one request on the model's worker: (reply header, body). ``headers`` are lower-case.

        A request that was only waiting in a worker's inbox when the worker died (its model was
        not running there) is sent again once the model is reloaded: it never started, so the
        client need not see the crash of a neighbour. So is one whose time ran out while it waited
        in the inbox of a worker on its way out (replaced for its hung threads, or killed for not
        answering its ping), once, with a timeout afresh: it never started."""
        entry = self.registry.get(name)
        if entry is None:
            metrics.cache_misses.inc()
            raise self.single_failure or ModelNotLoaded()
        timeout = self.settings.timeout_seconds
        started = time.perf_counter()
        header = {"op": Op.INVOKE, "key": name, "headers": headers}
        status = 500
        since = started  # what the request's timeout counts from
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
                    reply, out = await worker.call(header, body, timeout=self._left(since))
                    break
                except WorkerDied as died:
                    if died.started:
                        raise
                    log.info("a request to %r waited in %s when it died: sending it again after the reload", name, worker.name)
                    await self._until_reloaded(entry, worker, since)
                except CallTimedOut as late:
                    if late.started or since != started or not await self.pool.renewals.going(worker):
                        raise
                    log.info("a request to %r waited in %s, which is being replaced, and never started: sending it again",
                             name, worker.name)
                    since = time.perf_counter()
                    await self._until_reloaded(entry, worker, since)
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
            await asyncio.wait_for(entry.settled.wait(), timeout)
        except TimeoutError:
            raise ServingError("the model is still loading; retry shortly", 503) from None
        if entry.state == "quarantined" and entry.failure is not None:
            raise entry.failure
        if entry.state != "ready" or not entry.replicas or self.registry.get(entry.name) is not entry:
            raise ModelNotLoaded()  # its load failed, or it was unloaded while this request waited

    # ------------------------------------------------------------------ replicas

    def _route(self, entry: ModelEntry) -> WorkerProcess:
        """The replica to send a request to (``placement.Router``); a model whose workers stay
        saturated gets another replica on a spare slot of its framework, while there is one."""
        replicas = entry.replicas
        if not replicas:
            raise ModelNotLoaded()  # a load that failed after serving from its first replica
        worker, due = self.router.route(replicas, entry.heat)
        if due:
            slot = placement.spare_slot(self.pool.slots_of(entry.framework), {w.slot for w in replicas})
            if slot is not None:
                entry.heat.replicating = True
                self.background.start(self._replicate(entry, slot), f"replicate-{entry.name}")
        return worker

    async def _replicate(self, entry: ModelEntry, slot: int) -> None:
        try:
            worker = await self._add_replica(entry, handlers.get(entry.framework), slot)
            log.info("%r is hot: replica %d on %s", entry.name, len(entry.replicas), worker.name)
            metrics.replicas_added.labels(entry.framework).inc()
        except ServingError as err:
            log.warning("could not add a replica of %r (%d): %s", entry.name, err.status, err.message)
        finally:
            entry.heat.cooled()
        if self.registry.get(entry.name) is not entry:  # unloaded meanwhile: take the replica back
            await asyncio.gather(*(self._release(w, entry) for w in entry.replicas))

    def _forget(self, entry: ModelEntry) -> None:
        """Take ``entry`` out of the registry, and its faults out of the ledger: a model loaded
        again under its name starts with a clean record."""
        if self.registry.get(entry.name) is entry:
            self.registry.remove(entry)
            self.ledger.forget(entry.name)

    # ------------------------------------------------------------------ the pool's news

    def worker_died(self, worker: WorkerProcess) -> None:
        """Its models lose that replica; one left with none stays listed, as LOADING, and requests
        to it wait for the reload. One the ledger convicts is quarantined instead: not reloaded,
        answering a 500 that says so until it is unloaded and loaded again, so that its neighbours
        stop paying for it."""
        held = [entry for entry in self.registry.entries() if worker in entry.replicas]
        verdict = self.ledger.died(worker.death, [entry.name for entry in held])
        if verdict.forgiven is not None:
            self.pool.forgive(*verdict.forgiven)  # its crash loop is over: the restart need not wait out the backoff
        lost = []
        for entry in held:
            entry.replicas.remove(worker)
            if entry.name in verdict.quarantined:
                self._quarantine(entry, worker)
                continue
            lost.append(entry)
            if not entry.replicas:
                entry.state = "loading"
                entry.settled.clear()
        self.lost.setdefault(worker, []).extend(lost)  # beside reloads its death interrupted

    def _quarantine(self, entry: ModelEntry, worker: WorkerProcess) -> None:
        record = self.ledger.record(entry.name)
        entry.state = "quarantined"
        entry.failure = ServingError(
            f"this model was running at {len(record.deaths)} deaths of its worker "
            f"(last: {worker.exit_description()}); it is quarantined: unload it and load it again to retry", 500,
        )
        replicas, entry.replicas = entry.replicas, []
        for other in replicas:
            self.pool.unassign(other, entry.name)
            self.background.start(self._release(other, entry), f"quarantine-{entry.name}")
        entry.settled.set()
        metrics.quarantines.labels(entry.framework).inc()
        log.error("quarantined %r: running at %d deaths of its %s worker (blame %.1f)", entry.name, len(record.deaths),
                  entry.framework, record.blame)

    async def worker_renewing(self, old: WorkerProcess, worker: WorkerProcess) -> None:
        """``old``'s threads hang and ``worker`` replaces it: load each of its models on ``worker``,
        then route their requests there (suspects last, as after a death). One that cannot be
        loaded there now (the memory budget, say) stays on ``old`` until it is stopped, then is
        reloaded as after a death."""
        framework = handlers.get(worker.framework)

        async def move(entry: ModelEntry) -> None:
            if self.registry.get(entry.name) is not entry or old not in entry.replicas or entry.name in worker.models:
                return
            try:
                await self._add_replica(entry, framework, worker.slot)
            except ServingError as err:
                log.warning("could not move %r off %s (%d): %s; it reloads once that worker is stopped",
                            entry.name, old.name, err.status, err.message)
                return
            if old in entry.replicas:
                entry.replicas.remove(old)
            self.pool.unassign(old, entry.name)

        held = [entry for entry in self.registry.entries() if old in entry.replicas]
        first, suspects = self.ledger.reload_order(held, lambda entry: entry.name)
        await asyncio.gather(*(move(entry) for entry in first))
        await asyncio.gather(*(move(entry) for entry in suspects))
        log.info("moved %d of %d model(s) off %s to its replacement", sum(old not in e.replicas for e in held), len(held),
                 old.name)

    def worker_replaced(self, dead: WorkerProcess, worker: WorkerProcess) -> None:
        orphans = self.lost.pop(dead, [])
        self.background.start(self._reload(worker, orphans), f"reload-{worker.name}")

    async def _reload(self, worker: WorkerProcess, orphans: list[ModelEntry]) -> None:
        framework = handlers.get(worker.framework)

        async def reload(entry: ModelEntry) -> None:
            if self.registry.get(entry.name) is not entry or entry.state == "quarantined" or entry.name in worker.models:
                return  # gone, quarantined, or already on it (moved there by a replacement under way)
            try:
                await self._add_replica(entry, framework, worker.slot)
                log.info("reloaded %r on %s", entry.name, worker.name)
            except Superseded:
                return
            except ServingError as err:
                if self.registry.get(entry.name) is not entry:
                    return  # unloaded while it reloaded: the unload has said all there is
                if isinstance(err, LoadInterrupted) and self.ledger.retry_load(entry.name, err.alone):
                    log.warning("the worker died under the reload of %r, with more running: it waits for the next", entry.name)
                    self.lost.setdefault(worker, []).append(entry)
                    return
                if entry.replicas:
                    log.warning("reloading a replica of %r failed (%d): %s", entry.name, err.status, err.message)
                    return
                self._forget(entry)
                metrics.loaded_models.labels(entry.framework).dec()
                entry.failure = err
                entry.settled.set()
                log.error("reloading %r after the crash failed (%d): %s; it is unloaded", entry.name, err.status, err.message)

        first, suspects = self.ledger.reload_order(orphans, lambda entry: entry.name)
        await asyncio.gather(*(reload(entry) for entry in first))
        await asyncio.gather(*(reload(entry) for entry in suspects))


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
