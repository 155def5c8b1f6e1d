"""The platform's per-instance metrics, as Prometheus at ``GET /metrics`` on the endpoint's port.

What SageMaker publishes to CloudWatch for multi-model endpoints (ModelLoadingWaitTime,
ModelDownloadingTime, ModelLoadingTime, ModelUnloadingTime, ModelCacheHit, LoadedModelCount) and
for async endpoints (ApproximateBacklogSize), labelled by endpoint, variant and instance, plus
the routing's view of each instance (requests outstanding, requests served).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

if TYPE_CHECKING:
    from local.instances import Instance

REGISTRY = CollectorRegistry()
_INSTANCE = ["endpoint", "variant", "instance"]
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 360)


def _timing(name: str, documentation: str) -> Histogram:
    return Histogram(name, documentation, _INSTANCE, registry=REGISTRY, buckets=_BUCKETS)


loading_wait_time = _timing(
    "sagemaker_model_loading_wait_time_seconds", "ModelLoadingWaitTime: how long an invocation waited for its model"
)
downloading_time = _timing(
    "sagemaker_model_downloading_time_seconds", "ModelDownloadingTime: fetching and unpacking a model from S3"
)
loading_time = _timing("sagemaker_model_loading_time_seconds", "ModelLoadingTime: the container's LoadModel call")
unloading_time = _timing("sagemaker_model_unloading_time_seconds", "ModelUnloadingTime: the container's UnloadModel call")
cache_hits = Counter(
    "sagemaker_model_cache_hit_total", "ModelCacheHit: invocations whose model was loaded already (result=hit|miss)",
    _INSTANCE + ["result"], registry=REGISTRY,
)
loaded_models = Gauge("sagemaker_loaded_model_count", "LoadedModelCount", _INSTANCE, registry=REGISTRY)
evictions = Counter(
    "sagemaker_model_evictions_total", "Models unloaded because a LoadModel answered 507", _INSTANCE, registry=REGISTRY
)
outstanding = Gauge(
    "sagemaker_outstanding_requests", "Requests in flight on the instance (what LEAST_OUTSTANDING_REQUESTS reads)",
    _INSTANCE, registry=REGISTRY,
)
invocations = Counter(
    "sagemaker_invocations_total", "Invocations by outcome (ok, model_error, not_ready, ...)",
    ["endpoint", "variant", "outcome"], registry=REGISTRY,
)
backlog = Gauge(
    "sagemaker_approximate_backlog_size", "ApproximateBacklogSize: async requests queued or being processed",
    ["endpoint"], registry=REGISTRY,
)


def labels(instance: Instance) -> dict[str, str]:
    return {"endpoint": instance.endpoint, "variant": instance.variant, "instance": instance.name}


def render() -> bytes:
    return generate_latest(REGISTRY)
