"""Standby workers (server/front/supervisor/standby.py) over HTTP: a warm framework's first model
and a killed worker's models are served by a process that was already running; an unused standby
is stopped after the idle time; a standby gives its memory to a load before a 507. The policy
alone is tested in tests/fast/front/test_standby.py."""

import json
import os
import signal
import time

import psutil
import pytest

from tests.builders import sklearn_model

CSV = {"Content-Type": "text/csv"}


@pytest.fixture
def root(tmp_path):
    sklearn_model(tmp_path / "plain" / "model")
    return tmp_path


def multi(start_server, root, **env):
    return start_server(SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=root, **env)


def spawned_as_standby(server, framework: str) -> set[int]:
    """The worker processes started as ``framework``'s standby (still one, or taken into a slot since)."""
    pids = set()
    for process in server.descendants():
        try:
            command = process.cmdline()
        except psutil.NoSuchProcess:
            continue
        if "server.worker" in command and json.loads(command[command.index("server.worker") + 1])["name"] == f"{framework}-standby":
            pids.add(process.pid)
    return pids


def until(condition, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def one_standby(server, framework: str, besides: set[int]) -> int:
    """The pid of ``framework``'s standby, once it has imported its framework."""
    (pid,) = until(lambda: spawned_as_standby(server, framework) - besides)
    until(lambda: server.log().count(f"{framework} standby ready (pid {pid},"))
    return pid


def worker_pid(server, name: str) -> int:
    return server.client.get(f"/models/{name}").json()["workerPid"]


def test_a_warm_frameworks_first_model_and_a_killed_workers_models_are_served_by_standbys(start_server, root):
    server = multi(start_server, root, MODEL_SERVER_WARM_FRAMEWORKS="sklearn")
    first = one_standby(server, "sklearn", set())
    server.load("plain", root / "plain" / "model")
    assert worker_pid(server, "plain") == first  # no process was started for the first model
    second = one_standby(server, "sklearn", {first})  # the next standby, in the background
    os.kill(first, signal.SIGKILL)
    until(lambda: server.client.post("/models/plain/invoke", content=b"1,2,3,4", headers=CSV).status_code == 200)
    assert worker_pid(server, "plain") == second  # the dead worker's slot and model went to the standby
    assert 'worker_restarts_total{framework="sklearn"} 1.0' in server.client.get("/metrics").text
    one_standby(server, "sklearn", {first, second})  # and a new one follows


def test_an_unused_standby_is_stopped_after_the_idle_time_and_a_used_framework_keeps_one(start_server, root):
    server = multi(start_server, root, MODEL_SERVER_WARM_FRAMEWORKS="auto", MODEL_SERVER_WARM_IDLE_SECONDS="2")
    until(lambda: "standby ready" in server.log())
    until(lambda: "unused (MODEL_SERVER_WARM_IDLE_SECONDS)" in server.log())
    until(lambda: not any(spawned_as_standby(server, f) for f in ("onnx", "sklearn", "xgboost", "prophet", "pytorch", "tensorflow")))

    server.load("plain", root / "plain" / "model")  # its framework went cold: a worker is started for it
    cold = worker_pid(server, "plain")
    spare = one_standby(server, "sklearn", {cold})  # used again: warm again
    time.sleep(3)  # past the idle time: a framework whose workers hold a model keeps its spare
    assert psutil.pid_exists(spare)
    assert server.client.delete("/models/plain").status_code == 200
    until(lambda: not psutil.pid_exists(spare), timeout=30)


def test_a_standby_is_dropped_before_a_load_is_refused(start_server, root, tmp_path):
    """A model that fits the budget only without the standby loads: the standby goes, not the load."""
    server = multi(start_server, root, MODEL_SERVER_WARM_FRAMEWORKS="sklearn",
                   MODEL_SERVER_MEMORY_LIMIT_MB="1500", MODEL_SERVER_MEMORY_HEADROOM_MB="0")
    first = one_standby(server, "sklearn", set())
    server.load("plain", root / "plain" / "model")
    standby = one_standby(server, "sklearn", {first})
    used, standby_rss = server.memory()[0], psutil.Process(standby).memory_info().rss
    fits_alone = 1500 * 2**20 - used + standby_rss // 2  # over the limit beside the standby, under it without
    big = sklearn_model(tmp_path / "big" / "model")
    with open(big / "ballast", "wb") as file:  # sparse: large on paper (the estimate is 3x the files), nothing on disk
        file.truncate(fits_alone // 3)
    server.load("big", big)
    assert "stopping the sklearn standby" in server.log() and "to make room for a load" in server.log()
    until(lambda: not psutil.pid_exists(standby), timeout=10)
    assert server.client.post("/models/big/invoke", content=b"1,2,3,4", headers=CSV).status_code == 200


def test_single_model_mode_warms_the_models_framework_once_the_model_is_up(start_server, root):
    server = start_server(MODEL_SERVER_MODEL_DIR=root / "plain" / "model", MODEL_SERVER_WARM_FRAMEWORKS="auto")
    spare = one_standby(server, "sklearn", set())
    (worker,) = {p.pid for p in server.descendants()} - {spare}
    log = server.log()
    assert log.index("loaded 'model' (sklearn)") < log.index("worker sklearn-standby started")  # no import beside the model's
    assert "onnx" not in log  # only the model's framework
    os.kill(worker, signal.SIGKILL)
    until(lambda: server.client.post("/invocations", content=b"1,2,3,4", headers=CSV).status_code == 200)
    assert {p.pid for p in server.descendants()} >= {spare} and not psutil.pid_exists(worker)
