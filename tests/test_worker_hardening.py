"""Hardening of loads, memory and processes (issue 9): nothing wedges, nothing inflates, no
poison model takes its neighbours down, no process outlives the server. Real servers over HTTP."""

import os
import pickle
import signal
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil
import pytest

from tests.builders import SLOW_CODE, sklearn_model

CSV = {"Content-Type": "text/csv"}


@pytest.fixture
def root(tmp_path):
    sklearn_model(tmp_path / "plain" / "model")
    return tmp_path


def multi(start_server, root, **env):
    return start_server(SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=root, **env)


# The server as PID 1 of a PID namespace of its own, as in a container (root, or user namespaces).
AS_PID_1 = ("unshare", "--pid", "--fork", "--kill-child")


def can_be_pid_1() -> bool:
    try:
        return subprocess.run([*AS_PID_1, "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.skipif(not can_be_pid_1(), reason="unshare --pid is not permitted here")
def test_a_server_that_is_pid_1_starts_its_workers(start_server, root):
    """In a container the front is PID 1: a worker whose parent is 1 has not lost its front."""
    server = multi(start_server, root, wrapper=AS_PID_1)
    server.load("plain", root / "plain" / "model")
    answer = server.client.post("/models/plain/invoke", content=b"1,2,3,4", headers=CSV)
    assert answer.status_code == 200, answer.text


def test_a_load_that_never_returns_times_out_and_frees_its_name(start_server, root):
    sklearn_model(root / "stuck" / "model", code="""
    import time

    def model_fn(model_dir):
        time.sleep(10**6)
    """)
    server = multi(start_server, root, MODEL_SERVER_LOAD_TIMEOUT_SECONDS="2", MODEL_SERVER_LOAD_THREADS="2")
    server.load("plain", root / "plain" / "model")
    started = time.monotonic()
    for name in ("stuck-a", "stuck-b", "stuck-c"):  # more than the worker's load threads
        response = server.load(name, root / "stuck" / "model", expect=504)
        assert "did not load within 2 s" in response.json()["message"]
    assert time.monotonic() - started < 15
    # The names are free again, later loads and unloads of the framework go on, requests too.
    server.load("stuck-a", root / "plain" / "model")
    assert server.client.post("/models/stuck-a/invoke", content=b"1,2,3,4", headers=CSV).status_code == 200
    assert server.client.delete("/models/plain").status_code == 200
    assert server.client.get("/models/stuck-b").status_code == 404


class ClaimsAPebibyte:
    def __reduce__(self):
        return bytearray, (2**50,)


def test_an_impossible_allocation_in_a_load_is_a_failed_load_not_507(start_server, root):
    (root / "greedy" / "model").mkdir(parents=True)
    (root / "greedy" / "model" / "model.pkl").write_bytes(pickle.dumps(ClaimsAPebibyte()))
    server = multi(start_server, root)
    response = server.load("greedy", root / "greedy" / "model", expect=500)
    assert "more memory than can be had" in response.json()["message"]
    server.load("plain", root / "plain" / "model")


def test_a_model_larger_in_memory_than_on_disk_is_unloaded_with_507(start_server, root):
    sklearn_model(root / "balloon" / "model", code="""
    import os, joblib
    import numpy as np

    def model_fn(model_dir):
        model = joblib.load(os.path.join(model_dir, "model.joblib"))
        model.ballast = np.ones(450 * 2**20 // 8)  # 450 MB that the 1 kB file does not announce
        return model
    """)
    server = multi(start_server, root, MODEL_SERVER_MEMORY_LIMIT_MB="600", MODEL_SERVER_MEMORY_HEADROOM_MB="0")
    server.load("plain", root / "plain" / "model")
    response = server.load("balloon", root / "balloon" / "model", expect=507)
    assert "once loaded" in response.json()["message"]
    assert server.client.get("/models/balloon").status_code == 404
    pid = server.client.get("/models/plain").json()["workerPid"]
    assert psutil.Process(pid).memory_info().rss < 300 * 2**20  # the 450 MB were given back
    assert server.client.post("/models/plain/invoke", content=b"1,2,3,4", headers=CSV).status_code == 200


def test_a_poison_model_is_quarantined_and_its_neighbours_keep_serving(start_server, root):
    sklearn_model(root / "poison" / "model", code="""
    import os

    def predict_fn(data, model):
        os._exit(3)
    """)
    server = multi(start_server, root)
    server.load("plain", root / "plain" / "model")
    descriptors = psutil.Process(server.pid).num_fds()
    server.load("poison", root / "poison" / "model")
    for _ in range(2):
        assert server.client.post("/models/poison/invoke", content=b"1,2,3,4", headers=CSV).status_code == 503
        assert server.client.post("/models/plain/invoke", content=b"1,2,3,4", headers=CSV).status_code == 200
    response = server.client.post("/models/poison/invoke", content=b"1,2,3,4", headers=CSV)
    assert response.status_code == 500 and "quarantined" in response.json()["message"]
    assert server.client.get("/models/poison").json()["status"] == "QUARANTINED"
    pid = server.client.get("/models/plain").json()["workerPid"]
    for _ in range(3):
        assert server.client.post("/models/poison/invoke", content=b"1,2,3,4", headers=CSV).status_code == 500
    assert server.client.get("/models/plain").json()["workerPid"] == pid  # no more restarts
    # The two dead workers' sockets and running tables are closed, though the ledger remembers them.
    assert psutil.Process(server.pid).num_fds() <= descriptors
    assert 'model_quarantines_total{framework="sklearn"} 1.0' in server.client.get("/metrics").text
    assert "quarantined 'poison'" in server.log() and "while working on 'poison'" in server.log()
    # Unloaded and loaded again, it gets a fresh start.
    assert server.client.delete("/models/poison").status_code == 200
    server.load("poison", root / "poison" / "model")
    assert server.client.get("/models/poison").json()["status"] == "READY"


def test_requests_waiting_behind_a_crash_are_sent_again_and_their_model_is_not_quarantined(start_server, root):
    """The worker's one thread runs the poison model when it dies; the neighbour's request has only
    waited in line. It is answered after the reload, and two such deaths quarantine the poison only."""
    sklearn_model(root / "poison" / "model", code="""
    import os, time

    def predict_fn(data, model):
        time.sleep(0.5)
        os._exit(3)
    """)
    server = multi(start_server, root, MODEL_SERVER_WORKER_THREADS="1")
    server.load("plain", root / "plain" / "model")
    server.load("poison", root / "poison" / "model")
    for _ in range(2):
        with ThreadPoolExecutor(2) as pool:
            poisoned = pool.submit(server.client.post, "/models/poison/invoke", content=b"1,2,3,4", headers=CSV)
            time.sleep(0.2)
            waiting = pool.submit(server.client.post, "/models/plain/invoke", content=b"1,2,3,4", headers=CSV)
            assert poisoned.result().status_code == 503
            assert waiting.result().status_code == 200, waiting.result().text
    assert server.client.get("/models/poison").json()["status"] == "QUARANTINED"
    assert server.client.get("/models/plain").json()["status"] == "READY"
    assert server.client.post("/models/plain/invoke", content=b"1,2,3,4", headers=CSV).status_code == 200
    assert 'model_quarantines_total{framework="sklearn"} 1.0' in server.client.get("/metrics").text
    log = server.log()
    assert "while working on 'poison';" in log and "sending it again after the reload" in log


def test_unloads_release_memory_over_many_cycles(start_server, root):
    server = multi(start_server, root, MODEL_SERVER_LOG_LEVEL="WARNING")
    server.load("x", root / "plain" / "model")
    pid = server.client.get("/models/x").json()["workerPid"]
    assert server.client.delete("/models/x").status_code == 200
    baseline = psutil.Process(pid).memory_info().rss
    for _ in range(500):
        server.load("x", root / "plain" / "model")
        assert server.client.delete("/models/x").status_code == 200
    assert psutil.Process(pid).memory_info().rss - baseline < 16 * 2**20


# ------------------------------------------------------------------ no orphans


def test_sigterm_during_a_pip_install_leaves_no_pip_behind(start_server, root):
    # An index that accepts connections and never answers: pip hangs on it until killed.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    port = silent.getsockname()[1]
    sklearn_model(root / "needs" / "model", code="def model_fn(model_dir):\n    return None\n",
                  requirements=f"--index-url http://127.0.0.1:{port}/simple\nsome-package-nobody-has==1.0\n")
    server = multi(start_server, root, MODEL_SERVER_PACKAGES_DIR=root / "packages")
    loader = threading.Thread(target=server.load, args=("needs", root / "needs" / "model", None), daemon=True)
    loader.start()
    deadline = time.monotonic() + 60
    pips = []
    while time.monotonic() < deadline and not pips:
        pips = [p for p in server.descendants() if "pip" in " ".join(p.cmdline())]
        time.sleep(0.2)
    assert pips, server.log()
    code = server.stop()
    _, alive = psutil.wait_procs(pips, timeout=10)
    silent.close()
    assert not alive, [p.cmdline() for p in alive]
    assert code in (0, -15, 143)


def test_a_worker_with_every_thread_busy_dies_with_a_killed_front(start_server, root):
    sklearn_model(root / "slow" / "model", code=SLOW_CODE)
    server = multi(start_server, root, MODEL_SERVER_WORKER_THREADS="1")
    server.load("slow", root / "slow" / "model")
    worker = psutil.Process(server.client.get("/models/slow").json()["workerPid"])

    def busy() -> None:
        try:
            server.client.post("/models/slow/invoke", content=b"130,0,0,0", headers=CSV)
        except Exception:  # noqa: BLE001 - the front is killed under it
            pass

    threading.Thread(target=busy, daemon=True).start()
    time.sleep(1)
    os.kill(server.pid, signal.SIGKILL)
    worker.wait(timeout=10)  # raises psutil.TimeoutExpired if it outlives the front


def test_what_user_code_starts_ends_with_the_server(start_server, root):
    sklearn_model(root / "spawner" / "model", code="""
    import os, subprocess, joblib

    def model_fn(model_dir):
        subprocess.Popen(["sleep", "1000"])
        return joblib.load(os.path.join(model_dir, "model.joblib"))
    """)
    server = multi(start_server, root)
    server.load("spawner", root / "spawner" / "model")
    sleepers = [p for p in server.descendants() if p.name() == "sleep"]
    assert sleepers
    server.stop()
    _, alive = psutil.wait_procs(sleepers, timeout=10)
    assert not alive


def test_a_reload_cut_short_by_a_neighbours_crash_waits_for_the_next_worker(start_server, root):
    """The poison model reloads at once and crashes the new worker again while its slow neighbour
    is still reloading: the neighbour stays listed and is reloaded, never unloaded."""
    sklearn_model(root / "poison" / "model", code="""
    import os

    def predict_fn(data, model):
        os._exit(3)
    """)
    sklearn_model(root / "slowload" / "model", code="""
    import time, joblib, os

    def model_fn(model_dir):
        time.sleep(2)
        return joblib.load(os.path.join(model_dir, "model.joblib"))
    """)
    server = multi(start_server, root)
    server.load("poison", root / "poison" / "model")
    server.load("slowload", root / "slowload" / "model")
    assert server.client.post("/models/poison/invoke", content=b"1,2,3,4", headers=CSV).status_code == 503
    # Sent once poison is back, while slowload still loads on the new worker:
    assert server.client.post("/models/poison/invoke", content=b"1,2,3,4", headers=CSV).status_code == 503
    deadline = time.monotonic() + 60
    while server.client.get("/models/slowload").json().get("status") != "READY" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert server.client.get("/models/slowload").json()["status"] == "READY"
    assert server.client.post("/models/slowload/invoke", content=b"1,2,3,4", headers=CSV).status_code == 200


def test_reloads_cut_short_by_a_death_with_more_running_wait_for_the_next_worker(start_server, root):
    """The worker is killed from outside while two models reload on it: either may have been the
    cause, so neither is dropped; both are reloaded on the worker after."""
    for name in ("a", "b"):
        sklearn_model(root / name / "model", code="""
        import time, joblib, os

        def model_fn(model_dir):
            open(os.path.join(model_dir, "entered"), "w").close()
            time.sleep(1.5)
            return joblib.load(os.path.join(model_dir, "model.joblib"))
        """)
    server = multi(start_server, root, MODEL_SERVER_WARM_FRAMEWORKS="none")  # it counts the worker processes
    server.load("a", root / "a" / "model")
    server.load("b", root / "b" / "model")
    entered = [root / n / "model" / "entered" for n in "ab"]
    for marker in entered:
        marker.unlink()
    os.kill(server.client.get("/models/a").json()["workerPid"], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while not all(marker.exists() for marker in entered) and time.monotonic() < deadline:
        time.sleep(0.05)  # the new worker is in both model_fns
    (worker,) = [p for p in psutil.Process(server.process.pid).children() if "server.worker" in p.cmdline()]
    worker.kill()
    deadline = time.monotonic() + 60
    while {server.client.get(f"/models/{n}").json().get("status") for n in "ab"} != {"READY"} and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [server.client.post(f"/models/{n}/invoke", content=b"1,2,3,4", headers=CSV).status_code for n in "ab"] == [200, 200]
    assert "it waits for the next" in server.log()


def test_an_unload_during_a_reload_answers_once_the_reloaded_copy_is_released(start_server, root):
    """Two replicas; one's worker is killed. The other keeps the model READY while the dead one's
    replica reloads; an unload then must not answer before that reload's copy is given back."""
    sklearn_model(root / "big" / "model", code="""
    import time, joblib, os

    def model_fn(model_dir):
        model = joblib.load(os.path.join(model_dir, "model.joblib"))
        model.ballast = bytearray(300 * 2**20)
        time.sleep(2)
        return model
    """)
    server = multi(start_server, root, SAGEMAKER_MODEL_SERVER_WORKERS="2", MODEL_SERVER_WARM_FRAMEWORKS="none")  # counts workers
    server.load("big", root / "big" / "model")
    killed = server.client.get("/models/big").json()["replicas"][0]["workerPid"]
    os.kill(killed, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while killed in [r["workerPid"] for r in server.client.get("/models/big").json()["replicas"]] and time.monotonic() < deadline:
        time.sleep(0.05)
    def reloading():  # the new worker holds the ballast: big's model_fn is under way there
        return [w for w in psutil.Process(server.process.pid).children() if w.pid != killed and w.memory_info().rss > 300 * 2**20]

    while len(reloading()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(reloading()) == 2
    described = server.client.get("/models/big").json()
    assert described["status"] == "READY" and len(described["replicas"]) == 1
    assert server.client.delete("/models/big").status_code == 200
    workers = psutil.Process(server.process.pid).children()
    assert len(workers) == 2 and all(w.memory_info().rss < 250 * 2**20 for w in workers)  # no 300 MB left anywhere
    time.sleep(2.5)  # past the reload's end
    assert all(w.memory_info().rss < 250 * 2**20 for w in workers)
    assert server.client.get("/models/big").status_code == 404


def test_the_blame_of_a_death_is_shared_by_the_models_running_at_it(start_server, root):
    """A slow healthy model runs beside the poison model at two of its deaths, the poison alone
    at a third: the poison, running at all three, is quarantined; the neighbour is not."""
    sklearn_model(root / "poison" / "model", code="""
    import os, time

    def predict_fn(data, model):
        time.sleep(0.1)
        os._exit(3)
    """)
    sklearn_model(root / "slow" / "model", code=SLOW_CODE)
    server = multi(start_server, root)
    server.load("slow", root / "slow" / "model")
    server.load("poison", root / "poison" / "model")
    for _ in range(2):
        with ThreadPoolExecutor(2) as pool:
            slow = pool.submit(server.client.post, "/models/slow/invoke", content=b"101,0,0,0", headers=CSV)  # 1 s
            time.sleep(0.1)  # slow has stalled: poison starts beside it and kills the worker
            poison = pool.submit(server.client.post, "/models/poison/invoke", content=b"1,2,3,4", headers=CSV)
            assert (slow.result().status_code, poison.result().status_code) == (503, 503)
    assert server.client.get("/models/poison").json()["status"] != "QUARANTINED"  # half the blame of each
    assert server.client.post("/models/poison/invoke", content=b"1,2,3,4", headers=CSV).status_code == 503
    assert server.client.get("/models/poison").json()["status"] == "QUARANTINED"
    assert server.client.post("/models/slow/invoke", content=b"1,2,3,4", headers=CSV).status_code == 200
    assert server.client.get("/models/slow").json()["status"] == "READY"
    assert 'model_quarantines_total{framework="sklearn"} 1.0' in server.client.get("/metrics").text
    assert "quarantined 'poison': running at 3 deaths of its sklearn worker (blame 2.0)" in server.log()


def test_the_one_model_running_at_both_of_two_deaths_is_quarantined(start_server, root):
    """Under load other models run at each death, but different ones: the model running at both
    is named at the second death."""
    sklearn_model(root / "poison" / "model", code="""
    import os, time

    def predict_fn(data, model):
        time.sleep(0.1)
        os._exit(3)
    """)
    for name in ("a", "b"):
        sklearn_model(root / name / "model", code=SLOW_CODE)
    server = multi(start_server, root)
    for name in ("a", "b", "poison"):
        server.load(name, root / name / "model")
    for neighbour in ("a", "b"):
        with ThreadPoolExecutor(2) as pool:
            slow = pool.submit(server.client.post, f"/models/{neighbour}/invoke", content=b"101,0,0,0", headers=CSV)
            time.sleep(0.1)
            poison = pool.submit(server.client.post, "/models/poison/invoke", content=b"1,2,3,4", headers=CSV)
            assert (slow.result().status_code, poison.result().status_code) == (503, 503)
    assert server.client.get("/models/poison").json()["status"] == "QUARANTINED"
    for neighbour in ("a", "b"):
        assert server.client.post(f"/models/{neighbour}/invoke", content=b"1,2,3,4", headers=CSV).status_code == 200
        assert server.client.get(f"/models/{neighbour}").json()["status"] == "READY"


NEVER_LOADS = """
import time

def model_fn(model_dir):
    time.sleep(10**6)
"""


def test_loads_that_never_return_hold_up_no_other_load_and_their_unload_answers_at_once(start_server, root):
    """Two loads whose model_fn never returns, as many as the worker's load threads: another
    model's LoadModel answers within seconds (not after the load timeout), and a DELETE of a model
    still loading answers 200 at once; its LoadModel answers too, and its name is free again."""
    sklearn_model(root / "stuck" / "model", code=NEVER_LOADS)
    server = multi(start_server, root, MODEL_SERVER_LOAD_TIMEOUT_SECONDS="120", MODEL_SERVER_LOAD_THREADS="2")
    server.load("plain", root / "plain" / "model")  # the worker is up
    client = httpx.Client(base_url=server.url, timeout=20)
    pool = ThreadPoolExecutor(2)
    try:
        stuck = {name: pool.submit(server.client.post, "/models", json={"model_name": name, "url": str(root / "stuck" / "model")})
                 for name in ("stuck-a", "stuck-b")}
        deadline = time.monotonic() + 10
        while any(client.get(f"/models/{n}").status_code != 200 for n in stuck) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # both are in model_fn now
        started = time.monotonic()
        assert client.post("/models", json={"model_name": "other", "url": str(root / "plain" / "model")}).status_code == 200
        assert time.monotonic() - started < 8, "a load waited for the loads that never return"
        started = time.monotonic()
        assert client.delete("/models/stuck-a").status_code == 200
        assert time.monotonic() - started < 2, "the DELETE of a loading model waited for its load"
        assert stuck["stuck-a"].result(5).status_code == 404  # the load was abandoned: its LoadModel says so
        assert client.get("/models/stuck-a").status_code == 404
        assert "stuck-a" not in [m["modelName"] for m in client.get("/models").json()["models"]]
        server.load("stuck-a", root / "plain" / "model")  # the name is free; the abandoned load cannot take it back
        assert client.post("/models/stuck-a/invoke", content=b"1,2,3,4", headers=CSV).status_code == 200
        assert client.delete("/models/stuck-b").status_code == 200
        assert stuck["stuck-b"].result(5).status_code == 404
        assert client.post("/models/other/invoke", content=b"1,2,3,4", headers=CSV).status_code == 200
    finally:
        pool.shutdown(wait=False)
        client.close()


def test_racing_loads_and_unloads_of_one_name_leave_listing_registry_and_worker_agreeing(start_server, root):
    """DELETEs and POSTs of one name, concurrent: afterwards the name is listed exactly when it
    describes as READY and its invoke answers 200 (its worker holds it). A neighbour holding a
    million Python objects makes each unload's collection slow (~0.4 s), as under a big model,
    which widens the windows in which an unload of one copy of the name and the load of the next
    cross in the worker: an unload must never take a copy loaded after it was asked for."""
    sklearn_model(root / "objects" / "model", code="""
    import os, joblib

    def model_fn(model_dir):
        model = joblib.load(os.path.join(model_dir, "model.joblib"))
        model.objects = [[] for _ in range(10**6)]
        return model
    """)
    server = multi(start_server, root)
    server.load("keep", root / "objects" / "model")
    url = str(root / "plain" / "model")
    clients = [httpx.Client(base_url=server.url, timeout=30) for _ in range(12)]
    pool = ThreadPoolExecutor(len(clients))

    def agreement() -> tuple:
        listed = "racy" in [m["modelName"] for m in server.client.get("/models").json()["models"]]
        described = server.client.get("/models/racy")
        invoked = server.client.post("/models/racy/invoke", content=b"1,2,3,4", headers=CSV)
        return listed, described.status_code, described.json().get("status"), invoked.status_code

    agreeing = ((True, 200, "READY", 200), (False, 404, None, 404))
    try:
        disagreements = []
        # 150 requests in bursts of 10, the state checked after each.
        for burst in range(15):
            def one(index: int, burst: int = burst) -> int:
                client = clients[index % len(clients)]
                if (index + burst) % 2:
                    return client.delete("/models/racy").status_code
                return client.post("/models", json={"model_name": "racy", "url": url}).status_code
            statuses = list(pool.map(one, range(10)))
            assert set(statuses) <= {200, 404, 409}, statuses
            if (state := agreement()) not in agreeing:
                disagreements.append((burst, state))
        assert not disagreements
        assert server.client.post("/models/keep/invoke", content=b"1,2,3,4", headers=CSV).status_code == 200
    finally:
        pool.shutdown()
        for client in clients:
            client.close()
