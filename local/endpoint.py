"""A running endpoint's lifecycle: Creating → InService (or Failed), Updating, Deleting.

CreateEndpoint returns at once with ``Creating``; the fleet (local.fleet) starts the instances in
the background and the endpoint turns ``InService``, or ``Failed`` with the reason. A watcher
replaces an instance whose container died, as the platform does. UpdateEndpoint starts the new
configuration's instances beside the old ones before moving the traffic. Invocations are routed
by local.invocation; an async endpoint's queue (local.async_inference) feeds them from S3.
"""

import asyncio
import logging
import time
from typing import Any

from local.async_inference import AsyncQueue
from local.fleet import Fleet, Variant, variants_of
from local.instances import Instance
from local.invocation import Answer, Invocation, Router
from local.platform import Platform
from local.records import ConfigRecord, ModelRecord
from local.service_errors import ServiceError

log = logging.getLogger("local.endpoint")
WATCH_INTERVAL = 1.0  # how often the platform looks for instances whose container has died


def platform_environment(config: ConfigRecord, platform: Platform) -> dict[str, str]:
    """Variables the platform gives a container beyond the contract's own.

    The execution role's stand-in: credentials, a region, and this endpoint as every AWS
    service's address (its S3 holds what the SDK uploaded, e.g. ``SAGEMAKER_SUBMIT_DIRECTORY``'s
    ``sourcedir.tar.gz``). An async endpoint's containers also allow long, large requests."""
    out = {
        "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_REGION": platform.region, "AWS_DEFAULT_REGION": platform.region,
    }
    if platform.url:
        out["AWS_ENDPOINT_URL"] = platform.url
    if config.async_config is not None:
        out.update(SAGEMAKER_MODEL_SERVER_TIMEOUT_SECONDS="3600", SAGEMAKER_MAX_PAYLOAD_IN_MB="1024")
    return out


class Endpoint:
    def __init__(self, name: str, arn: str, config: ConfigRecord, models: dict[str, ModelRecord], platform: Platform):
        self.name = name
        self.arn = arn
        self.config = config
        self.status = "Creating"
        self.failure_reason: str | None = None
        self.created = self.modified = time.time()
        self.queue = (AsyncQueue(name, config.async_config, platform, self.invoke)
                      if config.async_config is not None else None)
        self.fleet = Fleet(name, platform.state_dir / "endpoints" / name, platform, variants_of(config, models),
                           platform_environment(config, platform), self.queue)
        self.router = Router(name, self.fleet, platform)
        self.task: asyncio.Task[None] | None = None
        self.watcher: asyncio.Task[None] | None = None

    @property
    def variants(self) -> list[Variant]:
        return self.fleet.variants

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
            dead = self.fleet.take_dead()
            if dead:
                await self.fleet.stop(dead)
                self.task = asyncio.create_task(self._converge("Replacing"))

    def update(self, changes: dict[str, dict[str, Any]]) -> None:
        """Apply DesiredWeight / DesiredInstanceCount per variant; Updating until the counts are reached."""
        for variant in self.variants:
            change = changes.get(variant.name, {})
            if "DesiredWeight" in change:
                variant.weight = float(change["DesiredWeight"])
            if "DesiredInstanceCount" in change:
                variant.desired_count = int(change["DesiredInstanceCount"])
        self._touch("Updating")
        self.task = asyncio.create_task(self._converge("Updating"))

    def switch(self, config: ConfigRecord, models: dict[str, ModelRecord]) -> None:
        """UpdateEndpoint: start the new configuration's instances beside the old ones, then move the
        traffic and stop the old; if the new ones fail to start, the old stay (and FailureReason says why)."""
        self._touch("Updating")
        self.task = asyncio.create_task(self._switch(config, variants_of(config, models)))

    async def _switch(self, config: ConfigRecord, variants: list[Variant]) -> None:
        previous, self.config = self.config, config  # described as the new one while it starts
        try:
            await self.fleet.replace(variants)
        except Exception as err:
            log.warning("endpoint %s: update to %s failed: %s", self.name, config.name, err)
            self.config = previous
            self.failure_reason = f"Update to endpoint configuration {config.name} failed: {err}"
        else:
            self.failure_reason = None
        self._touch("InService")

    async def _converge(self, phase: str) -> None:
        try:
            await self.fleet.scale()
        except Exception as err:  # any failure to start: the endpoint says why
            log.warning("endpoint %s: %s failed: %s", self.name, phase.lower(), err)
            if phase == "Replacing":
                return  # still in service on the instances it has
            self.failure_reason = str(err)
            if phase == "Creating":
                await self.fleet.stop_all()
            self._touch("Failed" if phase == "Creating" else "InService")
        else:
            self._touch("InService")

    def _touch(self, status: str) -> None:
        self.status = status
        self.modified = time.time()

    async def delete(self) -> None:
        self.status = "Deleting"
        for task in (self.watcher, self.task):
            if task is not None and not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self.queue is not None:
            await self.queue.close()
        await self.fleet.stop_all()

    # ------------------------------------------------------------------ description

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
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

    def summary(self) -> dict[str, Any]:
        described = self.describe()
        return {key: described[key] for key in
                ("EndpointName", "EndpointArn", "CreationTime", "LastModifiedTime", "EndpointStatus")}

    # ------------------------------------------------------------------ invocation

    def _check_in_service(self) -> None:
        if self.status not in ("InService", "Updating"):
            raise ServiceError("ValidationError", f"Endpoint {self.name} is not in service (status {self.status}).")

    def check_request(self, inv: Invocation) -> Variant:
        """The variant this request goes to, or the ValidationError AWS answers for it."""
        self._check_in_service()
        return self.router.variant_for(inv)

    async def invoke(self, inv: Invocation, instance: Instance | None = None) -> Answer:
        self._check_in_service()
        return await self.router.invoke(inv, instance)
