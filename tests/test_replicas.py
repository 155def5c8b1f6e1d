"""A hot model on every core: replicas of one model on several workers of its framework, each
request to the replica with the fewest outstanding requests. Real servers over HTTP."""

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.builders import SLOW_CODE, sklearn_model

CSV = {"Content-Type": "text/csv"}


@pytest.fixture
def root(tmp_path):
    sklearn_model(tmp_path / "plain" / "model")
    sklearn_model(tmp_path / "slow" / "model", code=SLOW_CODE)
    return tmp_path


def replicas(server, name):
    return server.client.get(f"/models/{name}").json()["replicas"]


def test_workers_setting_puts_a_replica_on_every_worker_and_spreads_requests(start_server, root):
    server = start_server(SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=root, SAGEMAKER_MODEL_SERVER_WORKERS="2",
                          MODEL_SERVER_WORKER_THREADS="1")
    server.load("slow", root / "slow" / "model")
    pids = {r["workerPid"] for r in replicas(server, "slow")}
    assert len(pids) == 2
    # Two requests of 2 s each at once: with one thread per worker they finish together only if
    # each went to another replica (least outstanding requests).
    started = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: server.client.post("/models/slow/invoke", content=b"102,0,0,0", headers=CSV),
                                range(2)))
    assert [a.status_code for a in answers] == [200, 200]
    assert time.monotonic() - started < 3.8
    # One replica's worker dies: the model stays READY and answers from the other at once.
    os.kill(pids.pop(), signal.SIGKILL)
    time.sleep(0.3)
    assert server.client.get("/models/slow").json()["status"] == "READY"
    assert server.client.post("/models/slow/invoke", content=b"1,2,3,4", headers=CSV).status_code == 200
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(replicas(server, "slow")) < 2:
        time.sleep(0.2)
    assert len(replicas(server, "slow")) == 2  # restored on the restarted worker
    assert server.client.delete("/models/slow").status_code == 200


def test_a_hot_model_gets_a_replica_on_another_worker_by_itself(start_server, root):
    server = start_server(SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=root, MODEL_SERVER_WORKER_THREADS="2",
                          MODEL_SERVER_REPLICATE_AT="2", MODEL_SERVER_MAX_WORKERS="2")
    server.load("slow", root / "slow" / "model")
    server.load("plain", root / "plain" / "model")
    assert len(replicas(server, "slow")) == 1  # one worker while nothing is hot: density first
    with ThreadPoolExecutor(6) as pool:
        busy = [pool.submit(server.client.post, "/models/slow/invoke", content=b"101,0,0,0", headers=CSV)
                for _ in range(12)]
        assert all(f.result().status_code == 200 for f in busy)
    assert len({r["workerPid"] for r in replicas(server, "slow")}) == 2
    assert len(replicas(server, "plain")) == 1  # the cold one stays where it was
    assert 'model_replicas_added_total{framework="sklearn"} 1.0' in server.client.get("/metrics").text
    assert server.client.delete("/models/slow").status_code == 200
    assert server.client.get("/models/slow").status_code == 404
