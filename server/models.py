"""The model service: load, unload, list, describe and invoke models on framework workers.

It owns the registry, the worker processes (one or more per framework, started on first need)
and the memory budget. Routes call it; it calls workers. When a worker dies it fails that
worker's requests in flight, starts a new one and reloads the models it held, which stay listed
(as LOADING) meanwhile; requests to them wait for the reload.
"""

import asyncio
import logging
import os
import time
from pathlib import Path

import handlers
from handlers.errors import ModelError
from server import acceleration, metrics
from server.config import Settings
from server.errors import ServingError
from server.memory import MemoryBudget, directory_bytes, tree_rss
from server.registry import ModelEntry, Registry, check_name
from server.workers import WorkerDied, WorkerProcess, worker_environment

log = logging.getLogger("models")

SINGLE_MODEL_NAME = "model"
QUICK_DEATH_SECONDS = 10.0  # a worker dying sooner than this after its start counts as a crash loop


class ModelService:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.registry = Registry()
        self.budget = MemoryBudget(settings.memory_limit_bytes, settings.memory_headroom_bytes)
        self.slots: dict[tuple[str, int], asyncio.Task] = {}  # (framework, slot) -> task giving its worker
        self.workers: dict[tuple[str, int], WorkerProcess] = {}
        self.stopping = False
        self.tasks: set[asyncio.Task] = set()
        self.worker_config = {
            "threads": settings.worker_threads,
            "default_accept": settings.default_accept,
            "log_level": settings.log_level,
            "program": settings.program,
            "intra_op_threads": settings.intra_op_threads,
            "packages_root": str(settings.packages_root),
        }
        self.worker_env = worker_environment(settings.intra_op_threads)
        metrics.memory_limit.set(self.budget.limit)

    # ------------------------------------------------------------------ lifecycle

    def spawn(self, coroutine, name: str) -> asyncio.Task:
        task = asyncio.create_task(coroutine, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def start(self) -> None:
        if self.settings.accel_report:  # MODEL_SERVER_ACCEL_REPORT: one log line, in a child process
            self.spawn(acceleration.log_report(log), "accel-report")
        if not self.settings.multi_model:
            self.spawn(self._load_single_model(), "load-single-model")
        elif self.settings.preload:
            self.spawn(self._preload(), "preload")

    async def stop(self) -> None:
        self.stopping = True
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*(w.stop() for w in self.workers.values()), return_exceptions=True)
        log.info("stopped %d worker(s)", len(self.workers))

    async def _load_single_model(self) -> None:
        try:
            await self.load(SINGLE_MODEL_NAME, str(self.settings.model_dir), inside_root=False)
        except ServingError as err:
            log.error("the model in %s failed to load (%d): %s", self.settings.model_dir, err.status, err.message)

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
        return False, "the model is loading" if entry is not None else "the model is not loaded"

    def describe(self, name: str) -> dict:
        entry = self.registry.get(name)
        if entry is None:
            raise ServingError(404, "model is not loaded")
        return entry.describe()

    def listing(self, token: str | None, limit: str | None) -> dict:
        entries, next_token = self.registry.page(token, limit)
        answer = {"models": [{"modelName": e.name, "modelUrl": e.url} for e in entries]}
        if next_token:
            answer["nextPageToken"] = next_token
        return answer

    def pids(self) -> list[int]:
        return [os.getpid()] + [w.pid for w in self.workers.values() if w.alive and w.pid]

    def memory_rss(self) -> int:
        return tree_rss(self.pids())

    # ------------------------------------------------------------------ load / unload

    def _resolve(self, url, inside_root: bool) -> Path:
        if not isinstance(url, str) or not url or "\x00" in url:
            raise ServingError(400, "url must be a non-empty path string")
        root = self.settings.models_root.resolve()
        path = (root / url).resolve() if inside_root else Path(url).resolve()
        if inside_root and path != root and root not in path.parents:
            raise ServingError(400, "url is not inside the models root")
        if not path.exists():
            raise ServingError(404, "url does not exist")
        if not path.is_dir():
            raise ServingError(404, "url is not a directory")
        return path

    async def load(self, name, url, inside_root: bool = True) -> ModelEntry:
        check_name(name)
        path = self._resolve(url, inside_root)
        if self.registry.get(name) is not None:
            raise ServingError(409, "a model with this name is already loaded")
        entry = ModelEntry(name=name, url=url, path=path, framework="unknown")
        self.registry.add(entry)  # holds the name: a concurrent load of it gets 409
        started = time.perf_counter()
        try:
            framework, disk_bytes = self._inspect(path)  # a listing and a few stat calls
            entry.framework = framework.name
            entry.estimate_bytes = int(disk_bytes * framework.memory_factor) + 2**20
            await self._load_on_worker(entry, framework)
        except BaseException as err:
            self.registry.remove(entry)
            failure = err if isinstance(err, ServingError) else ServingError(500, "the load was interrupted")
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

    def _inspect(self, path: Path):
        try:
            framework, _ = handlers.detect(path, self.settings.framework, self.settings.program)
        except ModelError as err:
            raise ServingError(err.status_code, err.message) from None
        return framework, directory_bytes(path)

    async def _load_on_worker(self, entry: ModelEntry, framework, worker: WorkerProcess | None = None) -> None:
        """Check the budget, then load ``entry`` on ``worker`` (or the least-filled of its framework)."""
        need = entry.estimate_bytes
        slot = None
        if worker is None:
            slot = self._pick_slot(framework.name)
            if (framework.name, slot) not in self.slots:
                need += framework.worker_bytes
        shortfall = self.budget.shortfall(need, self.pids())
        if shortfall:
            raise ServingError(507, shortfall)
        self.budget.reserved += need
        try:
            if worker is None:
                worker = await self._worker(framework.name, slot)
            worker.models.add(entry.name)  # counted at once, so parallel loads spread over slots
            try:
                header, _ = await worker.call({"op": "load", "key": entry.name, "path": str(entry.path)})
            except WorkerDied as died:
                worker.models.discard(entry.name)
                raise ServingError(500, f"the worker died while loading the model ({died.worker.exit_description()})") from None
            if header["status"] != 200:
                worker.models.discard(entry.name)
                raise ServingError(header["status"], header.get("error", "the model failed to load"))
        finally:
            self.budget.reserved -= need
        entry.worker = worker
        entry.mark_ready(header.get("memory_bytes", 0), header.get("seconds", 0.0))

    async def unload(self, name: str) -> None:
        entry = self.registry.get(name)
        if entry is None:
            raise ServingError(404, "model is not loaded")
        if entry.state != "ready":
            await entry.ready.wait()  # let the load (or reload) finish, then unload what it made
            if self.registry.get(name) is not entry:
                raise ServingError(404, "model is not loaded")
        started = time.perf_counter()
        self.registry.remove(entry)
        worker = entry.worker
        worker.models.discard(name)
        metrics.loaded_models.labels(entry.framework).dec()
        if worker.alive:
            try:
                await worker.call({"op": "unload", "key": name})
            except WorkerDied:
                pass  # its memory went with the worker
        metrics.unloading_time.observe(time.perf_counter() - started)
        log.info("unloaded %r in %.3fs", name, time.perf_counter() - started)

    # ------------------------------------------------------------------ invoke

    async def invoke(self, name: str, body: bytes, headers: dict) -> tuple[dict, bytes]:
        """Run one request on the model's worker: (reply header, body). ``headers`` are lower-case."""
        entry = self.registry.get(name)
        if entry is None:
            metrics.cache_misses.inc()
            raise ServingError(404, "model is not loaded")
        timeout = self.settings.timeout_seconds
        started = time.perf_counter()
        if entry.state != "ready":
            metrics.cache_misses.inc()
            try:
                await asyncio.wait_for(entry.ready.wait(), timeout)
            except asyncio.TimeoutError:
                raise ServingError(503, "the model is still loading; retry shortly") from None
            metrics.loading_wait_time.observe(time.perf_counter() - started)
            if entry.state != "ready":
                raise ServingError(404, "model is not loaded")
        else:
            metrics.cache_hits.inc()
        entry.invocations += 1
        entry.last_invoked_at = time.time()
        worker = entry.worker
        header = {"op": "invoke", "key": name, "headers": headers}
        status = 500
        try:
            remaining = max(0.001, timeout - (time.perf_counter() - started))
            reply, out = await worker.call(header, body, timeout=remaining)
            status = reply["status"]
            if status != 200:
                raise ServingError(status, reply.get("error", "prediction failed"))
            return reply, out
        except asyncio.TimeoutError:
            status = 504
            if worker.watchdog is None:
                worker.watchdog = self.spawn(self._watch_for_hang(worker, timeout), f"hang-{worker.name}")
            raise ServingError(504, f"the prediction took longer than {timeout:g} s") from None
        except WorkerDied as died:
            status = 503
            raise ServingError(
                503, f"the worker serving this model died during the request ({died.worker.exit_description()}); "
                "it is being restarted and the model reloaded"
            ) from None
        finally:
            metrics.invocations.labels(entry.framework, str(status)).inc()
            metrics.invocation_latency.labels(entry.framework).observe(time.perf_counter() - started)

    # ------------------------------------------------------------------ workers

    def _pick_slot(self, framework: str) -> int:
        """The slot with the fewest models; slots not started yet count as empty."""
        counts = [
            len(self.workers[(framework, s)].models) if (framework, s) in self.workers else 0
            for s in range(self.settings.workers_per_framework)
        ]
        return counts.index(min(counts))

    async def _worker(self, framework: str, slot: int) -> WorkerProcess:
        """The running worker of a slot, started (once, however many loads ask) if need be."""
        key = (framework, slot)
        while True:
            task = self.slots.get(key)
            if task is None:
                task = self.slots[key] = self.spawn(self._start_worker(framework, slot), f"start-{framework}-{slot}")
            try:
                worker = await asyncio.shield(task)
            except Exception as err:
                if self.slots.get(key) is task:
                    del self.slots[key]
                raise ServingError(500, f"the {framework} worker failed to start: {err}") from None
            if worker.alive:
                return worker
            await asyncio.sleep(0.05)  # it just died: its watcher is replacing it

    async def _start_worker(self, framework: str, slot: int, backoff: float = 0.0) -> WorkerProcess:
        worker = WorkerProcess(framework, slot, self.worker_config, self.worker_env)
        await worker.start(self.settings.startup_timeout_seconds)
        self.workers[(framework, slot)] = worker
        metrics.workers_running.labels(framework).inc()
        self.spawn(self._watch(worker, time.monotonic(), backoff), f"watch-{worker.name}")
        return worker

    async def _watch(self, worker: WorkerProcess, started: float, backoff: float = 0.0) -> None:
        """Wait for a worker's death; then restart it and reload its models."""
        await worker.exited
        metrics.workers_running.labels(worker.framework).dec()
        if self.stopping:
            return
        orphans = [e for e in self.registry.entries() if e.worker is worker]
        log.error(
            "worker %s (pid %s) died: %s; restarting it and reloading its %d model(s)",
            worker.name, worker.pid, worker.exit_description(), len(orphans),
        )
        metrics.worker_restarts.labels(worker.framework).inc()
        for entry in orphans:
            entry.state = "loading"
            entry.ready.clear()
        backoff = min(30.0, max(1.0, backoff * 2)) if time.monotonic() - started < QUICK_DEATH_SECONDS else 0.0
        key = (worker.framework, worker.slot)
        self.slots[key] = self.spawn(self._restart(worker, backoff, orphans), f"restart-{worker.name}")

    async def _watch_for_hang(self, worker: WorkerProcess, grace: float) -> None:
        """After a timeout: a worker that then answers nothing for ``grace`` more seconds while
        requests wait on it is wedged (every thread stuck, or the GIL held by native code). Kill
        it, so that it is restarted and its models reloaded, rather than time out forever."""
        since = time.monotonic()
        try:
            await asyncio.sleep(grace)
            if worker.alive and worker.unanswered and worker.last_answer < since:
                log.error(
                    "worker %s (pid %s) answered nothing for %.0fs with %d request(s) waiting: killing it",
                    worker.name, worker.pid, time.monotonic() - since, len(worker.unanswered),
                )
                metrics.worker_hangs.labels(worker.framework).inc()
                await worker.kill()
        finally:
            worker.watchdog = None

    async def _restart(self, dead: WorkerProcess, backoff: float, orphans: list[ModelEntry]) -> WorkerProcess:
        """Start a worker in the dead one's slot (retrying with backoff), then reload its models."""
        while True:
            if backoff:
                log.warning("waiting %.0fs before restarting worker %s", backoff, dead.name)
                await asyncio.sleep(backoff)
            try:
                worker = await self._start_worker(dead.framework, dead.slot, backoff)
                break
            except RuntimeError as err:
                log.error("restarting worker %s failed: %s", dead.name, err)
                backoff = min(30.0, max(1.0, backoff * 2))
        self.spawn(self._reload(worker, orphans), f"reload-{worker.name}")
        return worker

    async def _reload(self, worker: WorkerProcess, orphans: list[ModelEntry]) -> None:
        framework = handlers.get(worker.framework)

        async def reload(entry: ModelEntry) -> None:
            if self.registry.get(entry.name) is not entry:
                return
            try:
                await self._load_on_worker(entry, framework, worker)
                log.info("reloaded %r on %s", entry.name, worker.name)
            except ServingError as err:
                self.registry.remove(entry)
                metrics.loaded_models.labels(entry.framework).dec()
                entry.failure = err
                entry.ready.set()
                log.error("reloading %r after the crash failed (%d): %s; it is unloaded", entry.name, err.status, err.message)

        await asyncio.gather(*(reload(e) for e in orphans))
