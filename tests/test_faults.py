"""Nothing lost: a crashing worker, a hung or failing request, a bad model never takes the rest down."""

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest

from tests.builders import SLOW_CODE, sklearn_model

CSV = {"Content-Type": "text/csv"}


@pytest.fixture
def root(tmp_path):
    sklearn_model(tmp_path / "slow" / "model", code=SLOW_CODE)
    sklearn_model(tmp_path / "plain" / "model")
    return tmp_path


def slow_loading_model(directory, seconds: float):
    """A model whose ``model_fn`` takes ``seconds``."""
    return sklearn_model(directory, code=f"""
    import time, joblib, os

    def model_fn(model_dir):
        time.sleep({seconds})
        return joblib.load(os.path.join(model_dir, "model.joblib"))
    """)


def slow_body(seconds: float) -> bytes:
    return f"{100 + seconds},0,0,0".encode()


def test_worker_killed_mid_request(start_server, root):
    server = start_server(SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=root)
    server.load("slow", root / "slow" / "model")
    server.load("plain", root / "plain" / "model")
    pid = server.client.get("/models/slow").json()["workerPid"]
    assert pid == server.client.get("/models/plain").json()["workerPid"]  # one worker holds both

    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(server.client.post, "/models/slow/invoke", content=slow_body(5), headers=CSV)
        time.sleep(1)
        os.kill(pid, signal.SIGKILL)
        response = pending.result()
    assert response.status_code == 503
    assert "died" in response.json()["message"] and "SIGKILL" in response.json()["message"]

    listed = [m["modelName"] for m in server.client.get("/models").json()["models"]]
    assert listed == ["plain", "slow"]
    # Both models answer again (requests wait for the reload), on a new worker.
    for name in ("slow", "plain"):
        answer = server.client.post(f"/models/{name}/invoke", content=b"1,2,3,4", headers=CSV)
        assert answer.status_code == 200, answer.text
    assert server.client.get("/models/slow").json()["workerPid"] not in (pid, None)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    log = server.log()
    assert "died: killed by signal 9 (SIGKILL)" in log and "reloaded 'slow'" in log
    assert 'worker_restarts_total{framework="sklearn"} 1.0' in server.client.get("/metrics").text


def test_ping_answers_while_every_worker_is_busy(start_server, root):
    server = start_server(SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=root, MODEL_SERVER_WORKER_THREADS="2")
    server.load("slow", root / "slow" / "model")
    with ThreadPoolExecutor(8) as pool:
        busy = [pool.submit(server.client.post, "/models/slow/invoke", content=slow_body(4), headers=CSV) for _ in range(8)]
        time.sleep(1)
        for _ in range(5):
            started = time.monotonic()
            assert server.client.get("/ping").status_code == 200
            assert time.monotonic() - started < 2.0
            time.sleep(0.2)
        assert all(f.result().status_code == 200 for f in busy)


def test_a_prediction_over_the_timeout_is_504_and_the_rest_goes_on(start_server, root):
    server = start_server(
        SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=root, SAGEMAKER_MODEL_SERVER_TIMEOUT_SECONDS="1"
    )
    server.load("slow", root / "slow" / "model")
    server.load("plain", root / "plain" / "model")
    response = server.client.post("/models/slow/invoke", content=slow_body(3), headers=CSV)
    assert response.status_code == 504 and "longer than 1 s" in response.json()["message"]
    assert server.client.post("/models/plain/invoke", content=b"1,2,3,4", headers=CSV).status_code == 200
    assert server.client.post("/models/slow/invoke", content=b"1,2,3,4", headers=CSV).status_code == 200


def test_requests_to_one_model_do_not_wait_behind_a_slow_load(start_server, root):
    slow_loading_model(root / "slowload" / "model", seconds=4)
    server = start_server(SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=root)
    server.load("plain", root / "plain" / "model")
    loader = threading.Thread(target=server.load, args=("slowload", root / "slowload" / "model"))
    loader.start()
    time.sleep(0.5)
    started = time.monotonic()
    for _ in range(10):
        assert server.client.post("/models/plain/invoke", content=b"1,2,3,4", headers=CSV).status_code == 200
    assert server.client.get("/ping").status_code == 200
    assert time.monotonic() - started < 2.0  # far less than the 4 s the load takes
    described = server.client.get("/models/slowload").json()
    assert described["status"] == "LOADING"
    loader.join()
    assert server.client.get("/models/slowload").json()["status"] == "READY"


def test_a_worker_crash_during_a_load_fails_that_load_only(start_server, root):
    crashing = """
    import os, signal

    def model_fn(model_dir):
        os.kill(os.getpid(), signal.SIGKILL)
    """
    sklearn_model(root / "crasher" / "model", code=crashing)
    server = start_server(SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=root)
    server.load("plain", root / "plain" / "model")
    response = server.load("crasher", root / "crasher" / "model", expect=500)
    assert "worker died while loading" in response.json()["message"]
    assert server.client.get("/models/crasher").status_code == 404
    answer = server.client.post("/models/plain/invoke", content=b"1,2,3,4", headers=CSV)
    assert answer.status_code == 200  # reloaded on the new worker


def test_an_exception_in_user_code_is_a_500_with_its_message(start_server, root):
    failing = """
    def predict_fn(data, model):
        raise ValueError("bad feature 'age' in /home/secret/path/file.py")
    """
    sklearn_model(root / "failing" / "model", code=failing)
    server = start_server(SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=root)
    server.load("failing", root / "failing" / "model")
    response = server.client.post("/models/failing/invoke", content=b"1,2,3,4", headers=CSV)
    assert response.status_code == 500
    error = response.json()["message"]
    assert "ValueError: bad feature 'age'" in error
    assert "/home/secret" not in error and "Traceback" not in error
    assert "bad feature 'age'" in server.log()


def test_a_wedged_worker_is_killed_restarted_and_its_models_reloaded(start_server, root):
    """A worker that answers nothing at all (stopped outright here; the GIL held by native code
    looks the same) while no request of it has timed out: the ping kills it. Threads stuck in
    requests past the timeout are the replacement's case (tests/test_recovery.py)."""
    server = start_server(
        SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=root, SAGEMAKER_MODEL_SERVER_TIMEOUT_SECONDS="1",
        MODEL_SERVER_WORKER_THREADS="2",
    )
    server.load("plain", root / "plain" / "model")
    pid = server.client.get("/models/plain").json()["workerPid"]
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + 30
    while "answered nothing" not in server.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    while time.monotonic() < deadline:
        answer = server.client.post("/models/plain/invoke", content=b"1,2,3,4", headers=CSV)
        if answer.status_code == 200:
            break
        time.sleep(0.5)
    assert answer.status_code == 200
    assert server.client.get("/models/plain").json()["workerPid"] != pid
    assert "answered nothing" in server.log()
    assert 'worker_hangs_total{framework="sklearn"} 1.0' in server.client.get("/metrics").text


def test_a_request_waiting_on_a_load_that_is_then_unloaded_is_404(start_server, root):
    slow_loading_model(root / "slowload" / "model", seconds=2)
    server = start_server(SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=root)
    with ThreadPoolExecutor(3) as pool:
        loading = pool.submit(server.load, "slowload", root / "slowload" / "model", expect=None)
        time.sleep(0.5)
        unloading = pool.submit(server.client.delete, "/models/slowload")
        time.sleep(0.3)
        invoking = pool.submit(server.client.post, "/models/slowload/invoke", content=b"1,2,3,4", headers=CSV)
        assert unloading.result().status_code == 200
        assert loading.result().status_code == 404  # unloaded while it loaded: the load was abandoned
        answer = invoking.result()
    assert answer.status_code == 404, answer.text  # the platform loads it again and retries
    assert "not loaded" in answer.json()["message"]
    assert server.client.get("/models/slowload").status_code == 404


def test_a_worker_whose_user_code_forked_is_still_noticed_dead(start_server, root):
    """The forked child holds the worker's socket, so its end never comes: the process's exit must
    be enough, and the child goes with the worker's process group."""
    forking = """
    import os, time

    def predict_fn(data, model):
        child = os.fork()
        if child == 0:
            time.sleep(600)
            os._exit(0)
        with open(os.path.join(os.path.dirname(__file__), "child.pid"), "w") as out:
            out.write(str(child))
        os._exit(3)
    """
    sklearn_model(root / "forker" / "model", code=forking)
    server = start_server(SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=root, SAGEMAKER_MODEL_SERVER_TIMEOUT_SECONDS="20")
    server.load("plain", root / "plain" / "model")
    server.load("forker", root / "forker" / "model")
    started = time.monotonic()
    response = server.client.post("/models/forker/invoke", content=b"1,2,3,4", headers=CSV)
    assert response.status_code == 503 and "exit code 3" in response.json()["message"]
    assert time.monotonic() - started < 10  # not the 20 s timeout
    child = int((root / "forker" / "model" / "code" / "child.pid").read_text())
    deadline = time.monotonic() + 5
    while psutil.pid_exists(child) and psutil.Process(child).status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE
    assert server.client.post("/models/plain/invoke", content=b"1,2,3,4", headers=CSV).status_code == 200
    assert "holds its socket" in server.log()
