"""Recovery from hung threads and crash loops (issue 21, item 5): a worker whose threads hang is
replaced while it serves, a request that only waited behind them goes to its replacement, and a
LoadModel never waits out a restart backoff."""

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest

from tests.builders import SLOW_CODE, sklearn_model

CSV = {"Content-Type": "text/csv"}
HANG = f"{100 + 10**6},0,0,0".encode()  # SLOW_CODE sleeps 10**6 s on it: far past any timeout here
REPLACED = 'worker_replacements_total{framework="sklearn",reason="hung threads"} 1.0'


@pytest.fixture
def root(tmp_path):
    sklearn_model(tmp_path / "slow" / "model", code=SLOW_CODE)
    sklearn_model(tmp_path / "plain" / "model")
    return tmp_path


def worker_pid(server, name: str) -> int | None:
    described = server.client.get(f"/models/{name}").json()
    return described["workerPid"] if described.get("status") == "READY" else None


def gone(pid: int) -> bool:
    return not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_worker_that_lost_half_its_threads_is_replaced_while_its_neighbour_answers(start_server, root):
    server = start_server(
        SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=root, SAGEMAKER_MODEL_SERVER_TIMEOUT_SECONDS="2",
        MODEL_SERVER_WORKER_THREADS="4", MODEL_SERVER_MAX_WORKERS="1",
    )
    server.load("slow", root / "slow" / "model")
    server.load("plain", root / "plain" / "model")
    old = worker_pid(server, "plain")
    statuses: list[int] = []
    stop = threading.Event()

    def neighbour() -> None:
        while not stop.is_set():
            statuses.append(server.client.post("/models/plain/invoke", content=b"1,2,3,4", headers=CSV).status_code)
            time.sleep(0.05)

    hammer = threading.Thread(target=neighbour)
    hammer.start()
    try:
        with ThreadPoolExecutor(2) as pool:
            hung = [pool.submit(server.client.post, "/models/slow/invoke", content=HANG, headers=CSV) for _ in range(2)]
            assert [f.result().status_code for f in hung] == [504, 504]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (worker_pid(server, "plain") in (old, None) or not gone(old)):
            time.sleep(0.2)
        time.sleep(0.5)  # the neighbour keeps going on the new worker
    finally:
        stop.set()
        hammer.join()
    new = worker_pid(server, "plain")
    assert new not in (old, None) and gone(old), server.log()[-3000:]  # the hung threads died with the old worker
    assert worker_pid(server, "slow") == new
    assert statuses and set(statuses) == {200}, statuses  # not one neighbour request lost
    assert server.client.post("/models/slow/invoke", content=b"1,2,3,4", headers=CSV).status_code == 200
    metrics = server.client.get("/metrics").text
    assert REPLACED in metrics
    assert 'worker_hangs_total{framework="sklearn"}' not in metrics or 'worker_hangs_total{framework="sklearn"} 0.0' in metrics
    log = server.log()
    assert "2 of its 4 threads stuck in requests past the 2s timeout: replacing it" in log
    assert "died" not in log.split("replacing it", 1)[1]  # a replacement, not a death


def test_a_request_queued_behind_a_wedged_worker_goes_to_its_replacement(start_server, root):
    """Both threads hang; a request to the neighbour waits in the inbox behind them and never
    starts: it is answered by the replacement, not with a 504."""
    server = start_server(
        SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=root, SAGEMAKER_MODEL_SERVER_TIMEOUT_SECONDS="4",
        MODEL_SERVER_WORKER_THREADS="2", MODEL_SERVER_MAX_WORKERS="1",
    )
    server.load("slow", root / "slow" / "model")
    server.load("plain", root / "plain" / "model")
    old = worker_pid(server, "plain")
    with ThreadPoolExecutor(3) as pool:
        hung = [pool.submit(server.client.post, "/models/slow/invoke", content=HANG, headers=CSV) for _ in range(2)]
        time.sleep(0.3)
        queued = pool.submit(server.client.post, "/models/plain/invoke", content=b"1,2,3,4", headers=CSV)
        assert [f.result().status_code for f in hung] == [504, 504]
        answer = queued.result()
    assert answer.status_code == 200, answer.text
    assert worker_pid(server, "plain") not in (old, None)
    assert "never started: sending it again" in server.log()


def kill_worker(server, name: str, previous: int | None) -> int:
    """SIGKILL the worker serving ``name`` once it is a new one (not ``previous``); its pid."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pid = worker_pid(server, name)
        if pid not in (None, previous):
            os.kill(pid, signal.SIGKILL)
            return pid
        time.sleep(0.05)
    raise AssertionError(f"no new worker for {name}:\n{server.log()[-3000:]}")


def test_a_load_waiting_on_a_worker_in_backoff_answers_503_at_once(start_server, root):
    """Three quick deaths put the one sklearn slot in a 4 s restart backoff: a LoadModel then
    answers 503 with Retry-After at once, rather than waiting it out."""
    sklearn_model(root / "late" / "model")
    server = start_server(SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=root, MODEL_SERVER_MAX_WORKERS="1")
    server.load("plain", root / "plain" / "model")
    pid = None
    for _ in range(3):  # each worker lives less than 10 s: backoffs of 1, 2, then 4 s
        pid = kill_worker(server, "plain", pid)
    deadline = time.monotonic() + 10
    while "waiting 4s before restarting" not in server.log() and time.monotonic() < deadline:
        time.sleep(0.02)
    started = time.monotonic()
    response = server.load("late", root / "late" / "model", expect=None)
    took = time.monotonic() - started
    assert response.status_code == 503, response.text
    assert took < 1.0, took
    assert "restarting after repeated crashes; retry in" in response.json()["message"]
    assert 1 <= int(response.headers["Retry-After"]) <= 4
    assert server.client.get("/models/late").status_code == 404  # not half loaded
    # Once the backoff is over, the same load succeeds.
    deadline = time.monotonic() + 30
    while worker_pid(server, "plain") in (None, pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    server.load("late", root / "late" / "model")


def test_a_request_sent_to_a_frozen_worker_goes_to_its_successor(start_server, root):
    """The worker answers nothing (stopped outright, as when native code holds the GIL): the
    request's time runs out before the ping's does, in the inbox; the ping then kills the worker,
    and the request, which never started, is answered by the new one rather than with a 504."""
    server = start_server(
        SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=root, SAGEMAKER_MODEL_SERVER_TIMEOUT_SECONDS="4",
        MODEL_SERVER_MAX_WORKERS="1",
    )
    server.load("plain", root / "plain" / "model")
    pid = worker_pid(server, "plain")
    os.kill(pid, signal.SIGSTOP)
    answer = server.client.post("/models/plain/invoke", content=b"1,2,3,4", headers=CSV)
    assert answer.status_code == 200, answer.text
    assert worker_pid(server, "plain") not in (pid, None)
    log = server.log()
    assert "answered nothing" in log and "never started: sending it again" in log
