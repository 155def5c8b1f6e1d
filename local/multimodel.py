"""The platform's side of a multi-model endpoint, for one instance's multi-model container.

For ``TargetModel`` T: if T is loaded, invoke it; otherwise download ``<ModelDataUrl>/T`` to the
instance's storage (kept there, as the platform keeps it, so a model evicted from memory is not
downloaded again), unpack it into ``<models root>/<id>/model``, LoadModel, invoke. A LoadModel
that answers 507 makes room: the least recently used model not in use is unloaded and the load
retried (or, when nothing is left to evict but other loads are under way on the instance, retried
once they are done). An invoke that answers 404 (the container lost the model) loads it again and retries.
With ``ModelCacheSetting=Disabled`` each model is unloaded right after its invocation. A client
whose model is not ready within the wait (60 s on the platform) gets ``ModelNotReadyException``
(429) while the load goes on.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import Counter, OrderedDict
from typing import TYPE_CHECKING

import httpx

from local import metrics
from local.artifacts import ArtifactError
from local.container_calls import call, model_error
from local.service_errors import ServiceError

if TYPE_CHECKING:
    from local.artifacts import Storage
    from local.instances import Container, Instance

log = logging.getLogger("local.multimodel")
LOAD_TIMEOUT_SECONDS = 360  # how long the platform lets a load go on
RETRY_SECONDS = 0.2  # a 507 while other loads are under way: try again after this


def model_id(target_model: str) -> str:
    """The opaque name the container knows a model by (a hash, as on the platform)."""
    return hashlib.sha256(target_model.encode()).hexdigest()[:32]


class ModelCache:
    def __init__(self, instance: Instance, container: Container, storage: Storage, prefix: str, cache_enabled: bool,
                 client: httpx.AsyncClient, region: str):
        self.instance = instance
        self.container = container
        self.storage = storage
        self.prefix = prefix if prefix.endswith("/") else prefix + "/"
        self.cache_enabled = cache_enabled
        self.client = client
        self.region = region
        self.loaded: OrderedDict[str, str] = OrderedDict()  # target model -> id, least recent first
        self.loading: dict[str, asyncio.Task[None]] = {}
        self.in_use: Counter[str] = Counter()
        self.on_disk: set[str] = set()
        self.labels = metrics.labels(instance)
        self.counts: Counter[str] = Counter()  # downloads, loads, evictions, hits, misses: the scenario's report

    def affinity(self, target_model: str) -> int:
        """2 loaded (or loading) here, 1 on this instance's disk, 0 neither: where routing prefers."""
        if target_model in self.loaded or target_model in self.loading:
            return 2
        return 1 if target_model in self.on_disk else 0

    async def invoke(self, target_model: str, body: bytes, headers: dict[str, str], timeout: float,
                     ready_timeout: float) -> httpx.Response:
        started = time.monotonic()
        self.in_use[target_model] += 1
        try:
            hit = target_model in self.loaded
            metrics.cache_hits.labels(**self.labels, result="hit" if hit else "miss").inc()
            self.counts["hits" if hit else "misses"] += 1
            for attempt in range(3):
                if target_model not in self.loaded:
                    await self._ready(target_model, ready_timeout)
                    metrics.loading_wait_time.labels(**self.labels).observe(time.monotonic() - started)
                else:
                    self.loaded.move_to_end(target_model)
                response = await call(
                    self.client, self.region, self.instance, self.container, "POST",
                    f"/models/{model_id(target_model)}/invoke", timeout, content=body, headers=headers,
                )
                if response.status_code != 404 or attempt == 2:
                    return response
                self._forget(target_model)  # the container no longer has it: load and retry
            return response
        finally:
            self.in_use[target_model] -= 1
            if not self.cache_enabled and self.in_use[target_model] == 0 and target_model in self.loaded:
                await self.unload(target_model)

    async def _ready(self, target_model: str, ready_timeout: float) -> None:
        task = self.loading.get(target_model)
        if task is None:
            task = asyncio.create_task(self._load(target_model))
            self.loading[target_model] = task
            task.add_done_callback(lambda done: self._loaded(target_model, done))
        try:
            await asyncio.wait_for(asyncio.shield(task), ready_timeout)
        except TimeoutError:
            raise ServiceError(
                "ModelNotReadyException",
                f"Model {target_model} is still loading: it was not ready within {ready_timeout:g} s; retry later.",
                429,
            ) from None

    def _loaded(self, target_model: str, task: asyncio.Task[None]) -> None:
        self.loading.pop(target_model, None)
        if not task.cancelled() and task.exception() is not None:
            log.info("%s: loading %s failed: %s", self.instance.name, target_model, task.exception())

    async def _load(self, target_model: str) -> None:
        name = model_id(target_model)
        directory = self.container.models_root / name / "model"
        if target_model not in self.on_disk:
            started = time.monotonic()
            try:
                await asyncio.to_thread(self.storage.fetch_model, self.prefix + target_model, directory)
            except ArtifactError as err:
                raise ServiceError("ValidationError", str(err)) from None
            metrics.downloading_time.labels(**self.labels).observe(time.monotonic() - started)
            self.on_disk.add(target_model)
            self.counts["downloads"] += 1
        url = str(self.container.models_url_root / name / "model")  # as the container sees it
        deadline = time.monotonic() + LOAD_TIMEOUT_SECONDS
        while True:
            started = time.monotonic()
            response = await call(self.client, self.region, self.instance, self.container, "POST", "/models",
                                  LOAD_TIMEOUT_SECONDS, json={"model_name": name, "url": url})
            if response.status_code in (200, 409):  # 409: loaded already (a retry after a lost answer)
                metrics.loading_time.labels(**self.labels).observe(time.monotonic() - started)
                self.loaded[target_model] = name
                self.counts["loads"] += 1
                metrics.loaded_models.labels(**self.labels).set(len(self.loaded))
                return
            if response.status_code != 507 or time.monotonic() > deadline:
                break
            if await self._evict(exclude=target_model):
                continue
            if len(self.loading) > 1:  # nothing left to evict, but other loads hold memory: wait for them
                await asyncio.sleep(RETRY_SECONDS)
                continue
            break
        raise model_error(self.region, self.instance, self.container.spec.hostname, response.status_code, response.text)

    async def _evict(self, exclude: str) -> bool:
        """Unload the least recently used model not in use (else any but ``exclude``); False if none."""
        candidates = [t for t in self.loaded if t != exclude]
        idle = [t for t in candidates if self.in_use[t] == 0]
        if not candidates:
            return False
        victim = (idle or candidates)[0]
        await self.unload(victim)
        metrics.evictions.labels(**self.labels).inc()
        self.counts["evictions"] += 1
        log.info("%s: evicted %s to make room", self.instance.name, victim)
        return True

    async def unload(self, target_model: str) -> None:
        name = self.loaded.get(target_model)
        if name is None:
            return
        self._forget(target_model)
        started = time.monotonic()
        await call(self.client, self.region, self.instance, self.container, "DELETE", f"/models/{name}",
                   LOAD_TIMEOUT_SECONDS)
        metrics.unloading_time.labels(**self.labels).observe(time.monotonic() - started)

    def _forget(self, target_model: str) -> None:
        self.loaded.pop(target_model, None)
        metrics.loaded_models.labels(**self.labels).set(len(self.loaded))
