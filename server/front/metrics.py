"""Prometheus metrics: the quantities SageMaker publishes for MMEs, exposed by the container itself.

ModelLoadingWaitTime, ModelLoadingTime, ModelUnloadingTime, ModelCacheHit and LoadedModelCount
(CONTRACT.md §3), plus what an operator needs to see trouble: invocations by status, worker
restarts, load failures, memory. Served at ``GET /metrics`` on the main port.
"""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry()
_FAST = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

loading_time = Histogram(
    "model_loading_time_seconds", "Time to load a model (ModelLoadingTime)", ["framework"], registry=REGISTRY, buckets=_FAST
)
loading_wait_time = Histogram(
    "model_loading_wait_time_seconds", "Time an invocation waited for its model to load (ModelLoadingWaitTime)",
    registry=REGISTRY, buckets=_FAST,
)
unloading_time = Histogram(
    "model_unloading_time_seconds", "Time to unload a model (ModelUnloadingTime)", registry=REGISTRY, buckets=_FAST
)
cache_hits = Counter("model_cache_hits_total", "Invocations whose model was already loaded (ModelCacheHit)", registry=REGISTRY)
cache_misses = Counter("model_cache_misses_total", "Invocations whose model was not loaded or still loading", registry=REGISTRY)
loaded_models = Gauge("loaded_models", "Models loaded (LoadedModelCount)", ["framework"], registry=REGISTRY)
load_failures = Counter("model_load_failures_total", "Loads that failed, by status", ["framework", "code"], registry=REGISTRY)
invocations = Counter("invocations_total", "Invocations by framework and status", ["framework", "code"], registry=REGISTRY)
invocation_latency = Histogram(
    "invocation_latency_seconds", "Invocation time seen by the front", ["framework"], registry=REGISTRY, buckets=_FAST
)
# Requests per predict call, as the worker's invoke reply says (``batch``; handlers.batching).
invocation_batch_size = Histogram(
    "invocation_batch_size", "Requests that shared one predict call (dynamic batching)", ["framework"], registry=REGISTRY,
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
worker_restarts = Counter("worker_restarts_total", "Worker processes that died and were restarted", ["framework"], registry=REGISTRY)
worker_hangs = Counter("worker_hangs_total", "Workers killed for answering nothing after a timeout", ["framework"], registry=REGISTRY)
worker_replacements = Counter(
    "worker_replacements_total", "Workers replaced gracefully while alive (a new one took their models first)",
    ["framework", "reason"], registry=REGISTRY,
)
quarantines = Counter(
    "model_quarantines_total", "Models quarantined for being in flight at repeated worker deaths", ["framework"], registry=REGISTRY
)
replicas_added = Counter(
    "model_replicas_added_total", "Replicas added to hot models on more workers", ["framework"], registry=REGISTRY
)
standby_workers = Gauge(
    "standby_workers", "Standby workers ready, their framework imported, holding no slot", ["framework"], registry=REGISTRY
)
workers_running = Gauge("workers_running", "Worker processes running", ["framework"], registry=REGISTRY)
memory_rss = Gauge("server_memory_rss_bytes", "Resident memory of the front and its workers", registry=REGISTRY)
memory_limit = Gauge("server_memory_limit_bytes", "The memory budget loads are checked against", registry=REGISTRY)


def render() -> bytes:
    return generate_latest(REGISTRY)
