"""A multi-model endpoint through the local endpoint: the platform's side of MME, end to end.

30 customer models in S3 behind one endpoint of 2 instances whose memory limit holds about 10
each: a Zipf-distributed workload is answered in full while LoadModel's 507s make the platform
evict least-recently-used models, each model is downloaded once, stays on the instance that
loaded it, and the platform's metrics count it all.
"""

import random
import time
from concurrent.futures import ThreadPoolExecutor

import joblib
import numpy as np
import psutil
import pytest
from sklearn.neighbors import KNeighborsRegressor

from local.examples.steps import deploy, metric_sum, upload
from models.layout import archive
from tests.builders import sklearn_model
from tests.conftest import Server
from tests.local_endpoint.support import local_endpoint

CUSTOMERS = 30
ROWS = 50_000  # x 10 features x 8 bytes: 4 MB of memory per model (and on disk: random data)
MODEL_MB = ROWS * 10 * 8 / 2**20
HELD = 10  # models one instance's memory limit should hold
HEADROOM_MB = 16
BUCKET = "customer-models"


def customer_model(directory, seed: int):
    """A nearest-neighbours model of one customer: its memory is its training data, as for KNN."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(ROWS, 10))
    y = X @ rng.normal(size=10)
    directory.mkdir(parents=True, exist_ok=True)
    joblib.dump(KNeighborsRegressor(n_neighbors=3, algorithm="brute").fit(X, y), directory / "model.joblib")
    return directory


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    root = tmp_path_factory.mktemp("customers")
    for number in range(CUSTOMERS):
        customer_model(root / f"customer-{number:03d}" / "model", seed=number)
    sklearn_model(root / "slow-loader" / "model", code="import time, joblib\n\ndef model_fn(model_dir):\n"
                  "    time.sleep(8)\n    return joblib.load(model_dir + '/model.joblib')\n")
    ids = [f"customer-{number:03d}" for number in range(CUSTOMERS)] + ["slow-loader"]
    return root, {f"{model_id}.tar.gz": archive(root, model_id) for model_id in ids}


@pytest.fixture(scope="module")
def memory_limit_mb(archives, tmp_path_factory):
    """What one instance's limit must be to hold about HELD models: measured on a real server."""
    root, _ = archives
    # No standby workers, here or on the instances: the limit is sized for models, and a standby
    # (which gives way before a 507 and comes back when it fits) would make what fits vary.
    server = Server({"SAGEMAKER_MULTI_MODEL": "true", "MODEL_SERVER_MODELS_ROOT": root, "MODEL_SERVER_WARM_FRAMEWORKS": "none"},
                    tmp_path_factory.mktemp("calibrate") / "server.log")
    try:
        server.load("one", root / "customer-000" / "model")
        assert server.client.post("/models/one/invoke", content=row(0),
                                  headers={"Content-Type": "text/csv"}).status_code == 200
        tree = [psutil.Process(server.process.pid), *server.descendants()]
        base_mb = sum(p.memory_info().rss for p in tree) / 2**20
    finally:
        server.stop()
    # A load fits while RSS + 3 x its size on disk (sklearn's estimate) stays under limit - headroom.
    return int(base_mb + HEADROOM_MB + 3 * MODEL_MB + (HELD - 1.5) * MODEL_MB)


local = local_endpoint("--model-ready-timeout", "5")


@pytest.fixture(scope="module")
def mme(local, archives, memory_limit_mb):
    _, out = archives
    upload(local.boto("s3"), BUCKET, {f"models/{name}": path for name, path in out.items()})
    deploy(local.boto("sagemaker"), "customers", {
        "Image": "local", "Mode": "MultiModel", "ModelDataUrl": f"s3://{BUCKET}/models/",
        "Environment": {"MODEL_SERVER_MEMORY_LIMIT_MB": str(memory_limit_mb),
                        "MODEL_SERVER_MEMORY_HEADROOM_MB": str(HEADROOM_MB), "MODEL_SERVER_WARM_FRAMEWORKS": "none"},
    }, variants=[{"VariantName": "AllTraffic", "ModelName": "customers", "InitialInstanceCount": 2,
                  "InstanceType": "ml.m5.large"}], timeout=120)
    return "customers"


def row(seed: int) -> bytes:
    return ",".join(f"{v:.4f}" for v in np.random.default_rng(seed).normal(size=10)).encode()


def invoke_retrying(runtime, **request):
    """InvokeEndpoint, retrying 429s as AWS advises (a first load includes the worker's import)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return runtime.invoke_endpoint(**request)
        except runtime.exceptions.ModelNotReadyException:
            assert time.monotonic() < deadline, "the model never became ready"
            time.sleep(0.5)


def test_zipf_workload_is_answered_in_full_with_evictions(local, mme):
    runtime = local.boto("sagemaker-runtime")
    rng = random.Random(1)
    weights = [1 / (rank + 1) for rank in range(CUSTOMERS)]
    targets = [f"customer-{n:03d}.tar.gz" for n in rng.choices(range(CUSTOMERS), weights, k=160)]

    def invoke(pair):
        index, target = pair
        answer = invoke_retrying(runtime, EndpointName=mme, TargetModel=target, Body=row(index),
                                 ContentType="text/csv")
        return target, float(answer["Body"].read().decode().strip("[]\n"))

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(invoke, enumerate(targets)))
    assert len(answers) == len(targets)  # every call answered (an error would have raised)
    sample = dict(answers)
    assert all(np.isfinite(value) for value in sample.values())

    instances = local.instances(mme)["instances"]
    counts = [i["models"] for i in instances]
    evictions = sum(c.get("evictions", 0) for c in counts)
    downloads = sum(c.get("downloads", 0) for c in counts)
    hits = sum(c.get("hits", 0) for c in counts)
    loaded = [set(c["loaded"]) for c in counts]
    distinct = len(set(targets))
    print(f"{distinct} distinct models, {downloads} downloads, {evictions} evictions, "
          f"hit rate {hits / len(targets):.0%}, loaded per instance {[len(s) for s in loaded]}")
    assert evictions > 0, "the memory limit never made the platform evict"
    assert all(len(held) <= HELD + 4 for held in loaded), loaded
    assert not loaded[0] & loaded[1], "a model is loaded on both instances"
    assert downloads == distinct  # each model downloaded once: an evicted one is still on the instance's disk
    assert hits > len(targets) / 2

    text = local.metrics()
    assert metric_sum(text, "sagemaker_model_evictions_total", endpoint=mme) == evictions
    assert metric_sum(text, "sagemaker_model_downloading_time_seconds_count", endpoint=mme) == downloads
    assert metric_sum(text, "sagemaker_model_cache_hit_total", endpoint=mme, result="hit") == hits
    assert metric_sum(text, "sagemaker_model_loading_time_seconds_count", endpoint=mme) >= distinct
    assert metric_sum(text, "sagemaker_model_loading_wait_time_seconds_count", endpoint=mme) > 0
    assert metric_sum(text, "sagemaker_loaded_model_count", endpoint=mme) == sum(len(s) for s in loaded)


def test_a_model_the_container_lost_is_loaded_again(local, mme):
    runtime = local.boto("sagemaker-runtime")
    target = "customer-029.tar.gz"
    invoke_retrying(runtime, EndpointName=mme, TargetModel=target, Body=row(0), ContentType="text/csv")
    holder = next(i for i in local.instances(mme)["instances"] if target in i["models"]["loaded"])
    port = holder["containers"][0]["port"]
    import hashlib

    import httpx

    name = hashlib.sha256(target.encode()).hexdigest()[:32]
    assert httpx.delete(f"http://127.0.0.1:{port}/models/{name}").status_code == 200  # behind the platform's back
    answer = runtime.invoke_endpoint(EndpointName=mme, TargetModel=target, Body=row(0), ContentType="text/csv")
    assert answer["Body"].read()


def test_missing_target_model_and_missing_header(local, mme):
    runtime = local.boto("sagemaker-runtime")
    with pytest.raises(runtime.exceptions.ValidationError, match="Could not download model data"):
        runtime.invoke_endpoint(EndpointName=mme, TargetModel="nobody.tar.gz", Body=row(0), ContentType="text/csv")
    with pytest.raises(runtime.exceptions.ValidationError, match="TargetModel is required"):
        runtime.invoke_endpoint(EndpointName=mme, Body=row(0), ContentType="text/csv")


def test_a_slow_load_answers_429_then_succeeds(local, mme):
    runtime = local.boto("sagemaker-runtime")
    with pytest.raises(runtime.exceptions.ModelNotReadyException) as caught:
        runtime.invoke_endpoint(EndpointName=mme, TargetModel="slow-loader.tar.gz", Body=b"1,2,3,4",
                                ContentType="text/csv")
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    # the load went on; a retry gets the answer
    answer = invoke_retrying(runtime, EndpointName=mme, TargetModel="slow-loader.tar.gz", Body=b"1,2,3,4",
                             ContentType="text/csv")
    assert answer["Body"].read().strip() in (b"[0]", b"[1]", b"[2]")


def test_cache_disabled_unloads_after_each_call(local, mme):  # mme: the models are in S3
    sm, runtime = local.boto("sagemaker"), local.boto("sagemaker-runtime")
    deploy(sm, "uncached", {"Image": "local", "Mode": "MultiModel", "ModelDataUrl": f"s3://{BUCKET}/models/",
                            "MultiModelConfig": {"ModelCacheSetting": "Disabled"}}, timeout=120)
    for seed in range(3):
        invoke_retrying(runtime, EndpointName="uncached", TargetModel="customer-001.tar.gz", Body=row(seed),
                                ContentType="text/csv")
    (instance,) = local.instances("uncached")["instances"]
    assert instance["models"]["loaded"] == []
    assert instance["models"]["loads"] == 3 and instance["models"]["downloads"] == 1
    sm.delete_endpoint(EndpointName="uncached")
