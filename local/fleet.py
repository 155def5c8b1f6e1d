"""An endpoint's instances: per production variant, started up to its count, stopped, replaced.

An instance is started as the platform starts one: a directory of its own, its model data
fetched from S3 and unpacked there (or, for a multi-model container, a model cache that fetches
on demand), its containers started and each ``/ping`` awaited within the variant's startup
window. Names stay unique across updates (``<variant>-<n>``, counted per endpoint). The async
queue, when the endpoint has one, is told of each instance that enters or leaves service.
"""

import asyncio
import logging
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from local import routing
from local.artifacts import ArtifactError
from local.instances import Instance, build_instance
from local.multimodel import ModelCache
from local.platform import Platform
from local.records import ConfigRecord, ModelRecord

log = logging.getLogger("local.fleet")
DEFAULT_STARTUP_TIMEOUT = 240  # the platform's default ping window (CONTRACT.md §1)


@dataclass
class Variant:
    name: str
    model: ModelRecord
    weight: float
    desired_count: int
    strategy: str
    startup_timeout: float
    instances: list[Instance] = field(default_factory=list)

    def healthy(self) -> list[Instance]:
        return [instance for instance in self.instances if instance.healthy]


def variants_of(config: ConfigRecord, models: dict[str, ModelRecord]) -> list[Variant]:
    return [
        Variant(
            name=spec["VariantName"],
            model=models[spec["ModelName"]],
            weight=float(spec.get("InitialVariantWeight", 1.0)),
            desired_count=int(spec.get("InitialInstanceCount", 1)),
            strategy=spec.get("RoutingConfig", {}).get("RoutingStrategy", routing.LEAST_OUTSTANDING),
            startup_timeout=float(spec.get("ContainerStartupHealthCheckTimeoutInSeconds", DEFAULT_STARTUP_TIMEOUT)),
        )
        for spec in config.variants
    ]


class InstanceListener(Protocol):
    """Told when an instance enters service and when it leaves (the async queue's workers)."""

    def add_instance(self, instance: Instance) -> None: ...

    def remove_instance(self, instance: Instance) -> None: ...


class Fleet:
    def __init__(self, endpoint: str, directory: Path, platform: Platform, variants: list[Variant],
                 environment: dict[str, str], listener: InstanceListener | None):
        self.endpoint = endpoint
        self.directory = directory
        self.platform = platform
        self.variants = variants
        self.environment = environment  # the platform's variables beyond the contract's own
        self.listener = listener
        self.started: Counter[str] = Counter()  # instances ever started per variant name, for their names

    def instances(self) -> list[Instance]:
        return [instance for variant in self.variants for instance in variant.instances]

    def take_dead(self) -> list[Instance]:
        """Instances one of whose containers has exited, taken out of their variants."""
        dead = []
        for variant in self.variants:
            for instance in list(variant.instances):
                reason = next((r for r in (c.exit_reason() for c in instance.containers) if r), None)
                if reason:
                    log.warning("endpoint %s: replacing %s: %s", self.endpoint, instance.name, reason)
                    variant.instances.remove(instance)
                    dead.append(instance)
        return dead

    async def scale(self) -> None:
        """Every variant at its desired count (surplus instances stopped, missing ones started)."""
        await asyncio.gather(*(self._scale(variant) for variant in self.variants))

    async def replace(self, variants: list[Variant]) -> None:
        """Start ``variants``' instances beside the current ones, then stop the current ones; if
        the new ones fail to start they are stopped and the error raised (the current ones stay)."""
        try:
            await asyncio.gather(*(self._scale(variant) for variant in variants))
        except Exception:
            await self.stop([i for variant in variants for i in variant.instances])
            raise
        old, self.variants = self.instances(), variants
        await self.stop(old)

    async def _scale(self, variant: Variant) -> None:
        surplus = variant.instances[variant.desired_count:]
        if surplus:
            variant.instances = variant.instances[: variant.desired_count]
            await self.stop(surplus)
        missing = variant.desired_count - len(variant.instances)
        await asyncio.gather(*(self._start_instance(variant) for _ in range(missing)))

    async def _start_instance(self, variant: Variant) -> Instance:
        index = self.started[variant.name]
        self.started[variant.name] += 1
        name = f"{variant.name}-{index}"
        directory = self.directory / variant.name / name
        if directory.exists():
            shutil.rmtree(directory)
        directory.mkdir(parents=True)
        platform = self.platform
        instance = build_instance(name, self.endpoint, variant.name, directory, variant.model.containers,
                                  self.environment, platform.runner)
        try:
            for container in instance.containers:
                spec = container.spec
                if spec.multi_model:
                    instance.models = ModelCache(
                        instance, container, platform.storage, spec.model_data_url or "",
                        spec.cache_enabled, platform.client, platform.region,
                    )
                elif spec.model_data_url:
                    try:
                        await asyncio.to_thread(platform.storage.fetch_model, spec.model_data_url, container.model_dir)
                    except ArtifactError as err:
                        raise RuntimeError(f"{err} (production variant {variant.name})") from None
                else:
                    container.model_dir.mkdir(parents=True, exist_ok=True)
                container.start()
            await asyncio.gather(*(
                container.wait_healthy(platform.client, variant.startup_timeout) for container in instance.containers
            ))
        except BaseException:
            await asyncio.to_thread(instance.stop)
            raise
        instance.healthy = True
        variant.instances.append(instance)
        if self.listener is not None:
            self.listener.add_instance(instance)
        log.info("endpoint %s: instance %s in service", self.endpoint, name)
        return instance

    async def stop(self, instances: list[Instance]) -> None:
        for instance in instances:
            instance.healthy = False
            if self.listener is not None:
                self.listener.remove_instance(instance)
        await asyncio.gather(*(asyncio.to_thread(instance.stop) for instance in instances))

    async def stop_all(self) -> None:
        instances = self.instances()
        for variant in self.variants:
            variant.instances = []
        await self.stop(instances)
