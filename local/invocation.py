"""How one invocation finds its way: a variant, an instance of it, then its container(s).

A variant by weight (or ``TargetVariant``); an instance by the variant's routing (for a
multi-model endpoint, among the instances that hold the model, if any); then the container:
the only one, the one named by ``TargetContainerHostname`` (Direct), or each in turn (Serial:
each answer is the next request, its Content-Type carried, the client's Accept to the last).
"""

from dataclasses import dataclass

import httpx

from local import metrics, routing
from local.container_calls import call, raise_for_status
from local.fleet import Fleet, Variant
from local.instances import ContainerSpec, Instance
from local.platform import Platform
from local.service_errors import ServiceError


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


def containers_for(variant: Variant, inv: Invocation) -> list[ContainerSpec]:
    """The containers an invocation passes through, in order."""
    specs = variant.model.containers
    if variant.model.mode == "Direct":
        return [c for c in specs if c.hostname == inv.target_container]
    return specs if variant.model.mode == "Serial" else specs[:1]


def _affinity(instance: Instance, target_model: str) -> int:
    return instance.models.affinity(target_model) if instance.models is not None else 0


class Router:
    def __init__(self, endpoint: str, fleet: Fleet, platform: Platform):
        self.endpoint = endpoint
        self.fleet = fleet
        self.platform = platform

    def variant_for(self, inv: Invocation) -> Variant:
        """The variant this request goes to, or the ValidationError AWS answers for it."""
        name = self.endpoint
        if inv.target_variant is not None:
            variant = next((v for v in self.fleet.variants if v.name == inv.target_variant), None)
            if variant is None:
                raise ServiceError("ValidationError", f"The variant {inv.target_variant} does not exist on endpoint {name}.")
        else:
            variant = routing.choose_variant(self.fleet.variants, self.platform.rng)
        model = variant.model
        if model.mode == "Direct":
            if inv.target_container is None:
                raise ServiceError(
                    "ValidationError",
                    f"Endpoint {name} is a multi-container endpoint in Direct mode: TargetContainerHostname is required.",
                )
            if not any(c.hostname == inv.target_container for c in model.containers):
                raise ServiceError("ValidationError", f"The container {inv.target_container} does not exist on endpoint {name}.")
        elif inv.target_container is not None:
            raise ServiceError(
                "ValidationError", f"TargetContainerHostname applies only to an endpoint in Direct mode; {name} is not one.",
            )
        multi = any(c.multi_model for c in containers_for(variant, inv))
        if multi and not inv.target_model:
            raise ServiceError("ValidationError", f"Endpoint {name} is a multi-model endpoint: TargetModel is required.")
        if inv.target_model and not multi:
            raise ServiceError("ValidationError", f"Endpoint {name} is not a multi-model endpoint: TargetModel is not accepted.")
        if not variant.healthy():
            raise ServiceError("ServiceUnavailable", f"No instance of variant {variant.name} is in service.", 503)
        return variant

    def pick_instance(self, variant: Variant, target_model: str | None) -> Instance:
        instances = variant.healthy()
        if target_model and any(i.models is not None for i in instances):
            # a model stays on the instance that loaded it, then on the one that has it on disk
            best = max(_affinity(i, target_model) for i in instances)
            instances = [i for i in instances if _affinity(i, target_model) == best]
        chosen = routing.choose(instances, variant.strategy, self.platform.rng)
        if chosen is None:
            raise ServiceError("ServiceUnavailable", f"No instance of variant {variant.name} is in service.", 503)
        return chosen

    async def invoke(self, inv: Invocation, instance: Instance | None = None) -> Answer:
        """Route ``inv`` (to ``instance`` when it is still in service there: an async worker's own)."""
        variant = self.variant_for(inv)
        if instance is None or instance.variant != variant.name or not instance.healthy:
            instance = self.pick_instance(variant, inv.target_model)
        instance.outstanding += 1
        gauge = metrics.outstanding.labels(**metrics.labels(instance))
        gauge.inc()
        try:
            answer = await self._run(variant, instance, inv)
        except ServiceError as err:
            metrics.invocations.labels(self.endpoint, variant.name, err.code).inc()
            raise
        finally:
            instance.outstanding -= 1
            gauge.dec()
        instance.served += 1
        metrics.invocations.labels(self.endpoint, variant.name, "ok").inc()
        return answer

    async def _run(self, variant: Variant, instance: Instance, inv: Invocation) -> Answer:
        specs = containers_for(variant, inv)
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
            response: httpx.Response
            if spec.multi_model and instance.models is not None and inv.target_model:
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
