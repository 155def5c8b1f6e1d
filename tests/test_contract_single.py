"""Single-model mode and the process rules: CONTRACT.md §1 and §2."""

import subprocess
import sys
import time

import pytest

from harness.server import ROOT
from tests.builders import sklearn_model

SLOW_MODEL_FN = """
import time, joblib, os

def model_fn(model_dir):
    time.sleep(3)
    return joblib.load(os.path.join(model_dir, "model.joblib"))
"""


def test_ping_turns_200_once_the_model_is_loaded(start_server, tmp_path):
    directory = sklearn_model(tmp_path / "model", code=SLOW_MODEL_FN)
    server = start_server(wait_ready=False, MODEL_SERVER_MODEL_DIR=directory)
    early = server.client.get("/ping")
    assert early.status_code == 503 and "loading" in early.json()["message"]
    assert server.client.post("/invocations", content=b"1,2,3,4", headers={"Content-Type": "text/csv"}).status_code in (503, 200)
    server.wait_ping(60)
    response = server.client.post("/invocations", content=b"1,2,3,4\n5,6,7,8", headers={"Content-Type": "text/csv"})
    assert response.status_code == 200 and len(response.json()) == 2
    assert server.client.get("/models").status_code == 404  # model management is for multi-model mode


def test_a_model_that_failed_to_load_says_why_on_ping_and_invocations(start_server, tmp_path):
    directory = sklearn_model(tmp_path / "model", code="""
    def model_fn(model_dir):
        raise ValueError("the weights file is truncated")
    """)
    server = start_server(wait_ready=False, MODEL_SERVER_MODEL_DIR=directory)
    deadline = time.monotonic() + 60
    while "loading" in (ping := server.client.get("/ping")).text and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ping.status_code == 503 and "the weights file is truncated" in ping.json()["message"]
    response = server.client.post("/invocations", content=b"1,2,3,4", headers={"Content-Type": "text/csv"})
    assert response.status_code == 500
    assert response.json()["message"].startswith("the model failed to load: ") and "truncated" in response.json()["message"]


def test_execution_parameters_defaults_and_overrides(start_server, tmp_path):
    directory = sklearn_model(tmp_path / "model")
    server = start_server(MODEL_SERVER_MODEL_DIR=directory)
    answer = server.client.get("/execution-parameters").json()
    assert answer["BatchStrategy"] == "MULTI_RECORD" and answer["MaxPayloadInMB"] == 6
    assert answer["MaxConcurrentTransforms"] >= 1
    server = start_server(
        MODEL_SERVER_MODEL_DIR=directory, SAGEMAKER_BATCH="True", SAGEMAKER_MAX_PAYLOAD_IN_MB="20",
        SAGEMAKER_BATCH_STRATEGY="single_record", SAGEMAKER_MAX_CONCURRENT_TRANSFORMS="3",
    )
    assert server.client.get("/execution-parameters").json() == {
        "MaxConcurrentTransforms": 3, "BatchStrategy": "SINGLE_RECORD", "MaxPayloadInMB": 20,
    }


@pytest.mark.parametrize(
    "variable, value",
    [
        ("SAGEMAKER_BIND_TO_PORT", "eighty"),
        ("SAGEMAKER_MULTI_MODEL", "maybe"),
        ("SAGEMAKER_MODEL_SERVER_TIMEOUT_SECONDS", "-1"),
        ("SAGEMAKER_BATCH_STRATEGY", "ALL"),
        ("SAGEMAKER_SAFE_PORT_RANGE", "9000"),
        ("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "image/png"),
        ("MODEL_SERVER_FRAMEWORK", "caffe"),
    ],
)
def test_a_bad_variable_stops_startup_naming_it(variable, value):
    result = subprocess.run(
        [sys.executable, "-m", "server", "serve"], cwd=ROOT, env={"PATH": "/usr/bin:/bin", variable: value},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert variable in result.stderr and "Traceback" not in result.stderr


def test_only_serve_starts_the_server():
    result = subprocess.run([sys.executable, "-m", "server", "train"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "serve" in result.stderr


def test_sigterm_drains_in_flight_requests_and_leaves_no_process(start_server, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from tests.builders import SLOW_CODE

    sklearn_model(tmp_path / "slow" / "model", code=SLOW_CODE)
    sklearn_model(tmp_path / "other" / "model")
    server = start_server(SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=tmp_path)
    server.load("slow", tmp_path / "slow" / "model")
    server.load("other", tmp_path / "other" / "model")
    workers = server.descendants()
    assert len(workers) >= 1
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(
            server.client.post, "/models/slow/invoke", content=b"102,0,0,0", headers={"Content-Type": "text/csv"}
        )
        time.sleep(0.5)
        started = time.monotonic()
        code = server.stop()
        response = pending.result()
    assert response.status_code == 200  # the request in flight finished before the exit
    assert code == 0 and time.monotonic() - started < 30  # drained and stopped: a clean exit (server/graceful.py)
    assert not [p for p in workers if p.is_running() and p.status() != "zombie"]
