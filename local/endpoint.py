"""A running endpoint: its variants, their instances, and how one invocation finds its way.

CreateEndpoint returns at once with ``Creating``; the instances start in the background (model
data fetched from S3 and unpacked into each instance's directory, containers started, ``/ping``
awaited) and the endpoint turns ``InService``, or ``Failed`` with the reason. An invocation
picks a variant by weight (or ``TargetVariant``), an instance by the variant's routing (for a
multi-model endpoint, the instance that holds the model, if any), then the container: the only
one, the one named by ``TargetContainerHostname`` (Direct), or each in turn (Serial: each answer
is the next request, its Content-Type carried).
"""

import asyncio
import logging
import random
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from local import metrics, routing
from local.artifacts import ArtifactError
from local.aws import ServiceError
from local.calls import call, raise_for_status
from local.instances import Instance, build_instance
from local.multimodel import ModelCache

log = logging.getLogger("local.endpoint")
DEFAULT_STARTUP_TIMEOUT = 240  # the platform's default ping window (CONTRACT.md §1)
WATCH_INTERVAL = 1.0  # how often the platform looks for instances whose container has died


@dataclass
class Platform:
    """What every endpoint shares: where instances live, the S3 behind the port, one HTTP client."""

    state_dir: Path
    storage: object
    client: httpx.AsyncClient
    region: str
    ready_timeout: float = 60.0  # a multi-model client's wait for its model before a 429
    runner: str = "process"  # or "docker": each container is the model's Image (local.instances)
    rng: random.Random = field(default_factory=random.Random)


@dataclass
class Invocation:
    body: bytes
    content_type: str | None = None
    accept: str | None = None
    custom_attributes: str | None = None
    target_model: str | None = None
    target_variant: str | None = None
    target_container: str | None = None
    inference_id: str | None = None
    timeout: float = 60.0


@dataclass
class Answer:
    body: bytes
    content_type: str | None
    custom_attributes: str | None
    variant: str


@dataclass
class Variant:
    name: str
    model: object  # control.ModelRecord
    weight: float
    desired_count: int
    strategy: str
    startup_timeout: float
    instances: list[Instance] = field(default_factory=list)

    def healthy(self) -> list[Instance]:
        return [instance for instance in self.instances if instance.healthy]


def variants_of(config, models: dict) -> list[Variant]:
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


class Endpoint:
    def __init__(self, name: str, arn: str, config, models: dict, platform: Platform):
        self.name = name
        self.arn = arn
        self.config = config
        self.platform = platform
        self.status = "Creating"
        self.failure_reason: str | None = None
        self.created = self.modified = time.time()
        self.directory = platform.state_dir / "endpoints" / name
        self.variants = variants_of(config, models)
        self.queue = None  # local.asyncq.AsyncQueue for an async endpoint, set by the control plane
        self.task: asyncio.Task | None = None
        self.watcher: asyncio.Task | None = None
        self.replaced = 0  # instances replaced because a container died
        self.started: Counter = Counter()  # instances ever started per variant name, for their names

    # ------------------------------------------------------------------ lifecycle

    def deploy(self) -> None:
        self.task = asyncio.create_task(self._converge("Creating"))
        self.watcher = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        """Replace an instance whose container died (crash, OOM kill), as the platform does."""
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            if self.status != "InService" or (self.task is not None and not self.task.done()):
                continue
            dead = []
            for variant in self.variants:
                for instance in list(variant.instances):
                    reason = next((r for r in (c.exit_reason() for c in instance.containers) if r), None)
                    if reason:
                        log.warning("endpoint %s: replacing %s: %s", self.name, instance.name, reason)
                        variant.instances.remove(instance)
                        dead.append(instance)
            if dead:
                self.replaced += len(dead)
                await self._stop(dead)
                self.task = asyncio.create_task(self._converge("Replacing"))

    def update(self, changes: dict) -> None:
        """Apply DesiredWeight / DesiredInstanceCount per variant; Updating until the counts are reached."""
        for variant in self.variants:
            change = changes.get(variant.name, {})
            if "DesiredWeight" in change:
                variant.weight = float(change["DesiredWeight"])
            if "DesiredInstanceCount" in change:
                variant.desired_count = int(change["DesiredInstanceCount"])
        self.status = "Updating"
        self.modified = time.time()
        self.task = asyncio.create_task(self._converge("Updating"))

    def switch(self, config, models: dict) -> None:
        """UpdateEndpoint: start the new configuration's instances beside the old ones, then move the
        traffic and stop the old; if the new ones fail to start, the old stay (and FailureReason says why)."""
        self.status = "Updating"
        self.modified = time.time()
        self.task = asyncio.create_task(self._switch(config, variants_of(config, models)))

    async def _switch(self, config, variants: list[Variant]) -> None:
        previous = self.config
        self.config = config  # the new instances get the new configuration's environment
        try:
            await asyncio.gather(*(self._scale(variant) for variant in variants))
        except Exception as err:
            log.warning("endpoint %s: update to %s failed: %s", self.name, config.name, err)
            self.config = previous
            self.failure_reason = f"Update to endpoint configuration {config.name} failed: {err}"
            await self._stop([i for variant in variants for i in variant.instances])
        else:
            old, self.variants = self.variants, variants
            self.failure_reason = None
            await self._stop([i for variant in old for i in variant.instances])
        self.status = "InService"
        self.modified = time.time()

    async def _converge(self, phase: str) -> None:
        try:
            await asyncio.gather(*(self._scale(variant) for variant in self.variants))
        except Exception as err:  # any failure to start: the endpoint says why
            log.warning("endpoint %s: %s failed: %s", self.name, phase.lower(), err)
            if phase == "Replacing":
                return  # still in service on the instances it has
            self.failure_reason = str(err)
            self.status = "Failed" if phase == "Creating" else "InService"
            if phase == "Creating":
                await self._stop_all()
        else:
            self.status = "InService"
        self.modified = time.time()

    async def _scale(self, variant: Variant) -> None:
        surplus = variant.instances[variant.desired_count:]
        if surplus:
            variant.instances = variant.instances[: variant.desired_count]
            await self._stop(surplus)
        missing = variant.desired_count - len(variant.instances)
        await asyncio.gather(*(self._start_instance(variant) for _ in range(missing)))

    async def _start_instance(self, variant: Variant) -> Instance:
        index = self.started[variant.name]  # counted per endpoint: names stay unique across updates
        self.started[variant.name] += 1
        name = f"{variant.name}-{index}"
        directory = self.directory / variant.name / name
        if directory.exists():
            shutil.rmtree(directory)
        directory.mkdir(parents=True)
        instance = build_instance(name, self.name, variant.name, directory, variant.model.containers,
                                  self.platform_environment(), self.platform.runner)
        try:
            for container in instance.containers:
                spec = container.spec
                if spec.multi_model:
                    instance.models = ModelCache(
                        instance, container, self.platform.storage, spec.model_data_url or "",
                        spec.cache_enabled, self.platform.client, self.platform.region,
                    )
                elif spec.model_data_url:
                    try:
                        await asyncio.to_thread(self.platform.storage.fetch_model, spec.model_data_url,
                                                container.model_dir)
                    except ArtifactError as err:
                        raise RuntimeError(f"{err} (production variant {variant.name})") from None
                else:
                    container.model_dir.mkdir(parents=True, exist_ok=True)
                container.start()
            await asyncio.gather(*(
                container.wait_healthy(self.platform.client, variant.startup_timeout)
                for container in instance.containers
            ))
        except BaseException:
            await asyncio.to_thread(instance.stop)
            raise
        instance.healthy = True
        variant.instances.append(instance)
        if self.queue is not None:
            self.queue.add_instance(instance)
        log.info("endpoint %s: instance %s in service", self.name, name)
        return instance

    def platform_environment(self) -> dict:
        """Variables the platform sets beyond the contract's own: async allows long, large requests."""
        if self.config.async_config is None:
            return {}
        return {"SAGEMAKER_MODEL_SERVER_TIMEOUT_SECONDS": "3600", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "1024"}

    async def _stop(self, instances: list[Instance]) -> None:
        for instance in instances:
            instance.healthy = False
            if self.queue is not None:
                self.queue.remove_instance(instance)
        await asyncio.gather(*(asyncio.to_thread(instance.stop) for instance in instances))

    async def _stop_all(self) -> None:
        instances = [instance for variant in self.variants for instance in variant.instances]
        for variant in self.variants:
            variant.instances = []
        await self._stop(instances)

    async def delete(self) -> None:
        self.status = "Deleting"
        for task in (self.watcher, self.task):
            if task is not None and not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self.queue is not None:
            await self.queue.close()
        await self._stop_all()

    # ------------------------------------------------------------------ description

    def describe(self) -> dict:
        out = {
            "EndpointName": self.name,
            "EndpointArn": self.arn,
            "EndpointConfigName": self.config.name,
            "EndpointStatus": self.status,
            "CreationTime": self.created,
            "LastModifiedTime": self.modified,
            "ProductionVariants": [
                {
                    "VariantName": variant.name,
                    "DeployedImages": [
                        {"SpecifiedImage": c.image, "ResolvedImage": c.image, "ResolutionTime": self.created}
                        for c in variant.model.containers
                    ],
                    "CurrentWeight": variant.weight,
                    "DesiredWeight": variant.weight,
                    "CurrentInstanceCount": len(variant.healthy()),
                    "DesiredInstanceCount": variant.desired_count,
                    "RoutingConfig": {"RoutingStrategy": variant.strategy},
                }
                for variant in self.variants
            ],
        }
        if self.failure_reason:
            out["FailureReason"] = self.failure_reason
        if self.config.async_config is not None:
            out["AsyncInferenceConfig"] = self.config.async_config
        return out

    def summary(self) -> dict:
        described = self.describe()
        return {key: described[key] for key in
                ("EndpointName", "EndpointArn", "CreationTime", "LastModifiedTime", "EndpointStatus")}

    # ------------------------------------------------------------------ invocation

    def check_request(self, inv: Invocation) -> Variant:
        """The variant this request goes to, or the ValidationError AWS answers for it."""
        if self.status not in ("InService", "Updating"):
            raise ServiceError("ValidationError", f"Endpoint {self.name} is not in service (status {self.status}).")
        if inv.target_variant is not None:
            variant = next((v for v in self.variants if v.name == inv.target_variant), None)
            if variant is None:
                raise ServiceError(
                    "ValidationError", f"The variant {inv.target_variant} does not exist on endpoint {self.name}."
                )
        else:
            variant = routing.choose_variant(self.variants, self.platform.rng)
        model = variant.model
        if model.mode == "Direct":
            if inv.target_container is None:
                raise ServiceError(
                    "ValidationError",
                    f"Endpoint {self.name} is a multi-container endpoint in Direct mode: "
                    "TargetContainerHostname is required.",
                )
            if not any(c.hostname == inv.target_container for c in model.containers):
                raise ServiceError(
                    "ValidationError",
                    f"The container {inv.target_container} does not exist on endpoint {self.name}.",
                )
        elif inv.target_container is not None:
            raise ServiceError(
                "ValidationError",
                f"TargetContainerHostname applies only to an endpoint in Direct mode; {self.name} is not one.",
            )
        multi = any(c.multi_model for c in self.containers_for(variant, inv))
        if multi and not inv.target_model:
            raise ServiceError("ValidationError", f"Endpoint {self.name} is a multi-model endpoint: TargetModel is required.")
        if inv.target_model and not multi:
            raise ServiceError("ValidationError", f"Endpoint {self.name} is not a multi-model endpoint: "
                               "TargetModel is not accepted.")
        if not variant.healthy():
            raise ServiceError("ServiceUnavailable", f"No instance of variant {variant.name} is in service.", 503)
        return variant

    @staticmethod
    def containers_for(variant: Variant, inv: Invocation) -> list:
        specs = variant.model.containers
        if variant.model.mode == "Direct":
            return [c for c in specs if c.hostname == inv.target_container]
        return specs if variant.model.mode == "Serial" else specs[:1]

    def pick_instance(self, variant: Variant, target_model: str | None) -> Instance:
        instances = variant.healthy()
        if target_model and instances and instances[0].models is not None:
            # a model stays on the instance that loaded it, then on the one that has it on disk
            best = max(i.models.affinity(target_model) for i in instances)
            instances = [i for i in instances if i.models.affinity(target_model) == best]
        return routing.choose(instances, variant.strategy, self.platform.rng)

    async def invoke(self, inv: Invocation, instance: Instance | None = None) -> Answer:
        variant = self.check_request(inv)
        if instance is None or instance.variant != variant.name or not instance.healthy:
            instance = self.pick_instance(variant, inv.target_model)
        instance.outstanding += 1
        gauge = metrics.outstanding.labels(**metrics.labels(instance))
        gauge.inc()
        try:
            answer = await self._run(variant, instance, inv)
        except ServiceError as err:
            metrics.invocations.labels(self.name, variant.name, err.code).inc()
            raise
        finally:
            instance.outstanding -= 1
            gauge.dec()
        instance.served += 1
        metrics.invocations.labels(self.name, variant.name, "ok").inc()
        return answer

    async def _run(self, variant: Variant, instance: Instance, inv: Invocation) -> Answer:
        specs = self.containers_for(variant, inv)
        body, content_type, attributes = inv.body, inv.content_type, None
        region, client = self.platform.region, self.platform.client
        for index, spec in enumerate(specs):
            container = instance.container(spec.hostname)
            headers = {}
            if content_type:
                headers["Content-Type"] = content_type
            if index == len(specs) - 1 and inv.accept:
                headers["Accept"] = inv.accept  # intermediate containers answer their default type
            if inv.custom_attributes:
                headers["X-Amzn-SageMaker-Custom-Attributes"] = inv.custom_attributes
            if inv.inference_id:
                headers["X-Amzn-SageMaker-Inference-Id"] = inv.inference_id
            if spec.multi_model:
                headers["X-Amzn-SageMaker-Target-Model"] = inv.target_model
                response = await instance.models.invoke(
                    inv.target_model, body, headers, inv.timeout, self.platform.ready_timeout
                )
            else:
                response = await call(client, region, instance, container, "POST", "/invocations", inv.timeout,
                                      content=body, headers=headers)
            raise_for_status(region, instance, container, response)
            body = response.content
            content_type = response.headers.get("content-type")
            attributes = response.headers.get("x-amzn-sagemaker-custom-attributes", attributes)
        return Answer(body, content_type, attributes, variant.name)
