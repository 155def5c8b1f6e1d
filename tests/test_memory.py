"""Memory: a worker carries its own framework and nothing heavier, and loads started at once
are judged together against the budget (tests/test_memory_ceiling.py: under a real cgroup)."""

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from handlers.frameworks import sklearn
from server.front.budget import directory_bytes
from server.shared.rss import tree_rss
from tests.builders import knn_model, sklearn_model


def mapped_libraries(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def test_a_skops_model_does_not_pull_torch_into_the_sklearn_worker(start_server, examples):
    root = examples("sklearn")
    server = start_server(SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=root)
    server.load("ridge", root / "sklearn-ridge" / "model")  # model.skops
    answer = server.client.post("/models/ridge/invoke", json=[[1, 2, 3, 4]])
    assert answer.status_code == 200
    pid = server.client.get("/models/ridge").json()["workerPid"]
    assert "libtorch" not in mapped_libraries(pid)
    rss_mb = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * 4096 / 2**20
    assert rss_mb < 300, f"sklearn worker holds {rss_mb:.0f} MB"


def test_loads_started_at_once_are_judged_together_against_the_budget(start_server, tmp_path):
    """Six LoadModels of 40 MB k-nearest-neighbours models sent at once, with room for the
    estimates of two: two load, four answer 507 at once, none 500, and the memory in use stays
    within the budget. Without a reservation per load all six pass the check together."""
    knn = knn_model(tmp_path / "knn-0" / "model", megabytes=40)
    for index in range(1, 6):  # the same file under six names: six directories, six estimates
        (tmp_path / f"knn-{index}" / "model").mkdir(parents=True)
        os.link(knn / "model.joblib", tmp_path / f"knn-{index}" / "model" / "model.joblib")
    sklearn_model(tmp_path / "plain" / "model")
    estimate = int(directory_bytes(knn) * sklearn.FRAMEWORK.memory_factor) + 2**20

    # What a server holds with its sklearn worker up, measured on one; the next gets room for 2.5 estimates.
    probe = start_server(SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=tmp_path)
    probe.load("plain", tmp_path / "plain" / "model")
    base = tree_rss([probe.pid, *(p.pid for p in probe.descendants())])
    probe.stop()
    limit_mb = (base + 2.5 * estimate) // 2**20
    server = start_server(SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=tmp_path,
                          MODEL_SERVER_MEMORY_LIMIT_MB=str(int(limit_mb)), MODEL_SERVER_MEMORY_HEADROOM_MB="0")
    server.load("plain", tmp_path / "plain" / "model")

    barrier = threading.Barrier(6)

    def load(index: int) -> httpx.Response:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            barrier.wait()
            return client.post("/models", json={"model_name": f"knn-{index}", "url": str(tmp_path / f"knn-{index}" / "model")})

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(load, range(6)))
    codes = sorted(a.status_code for a in answers)
    assert codes == [200, 200, 507, 507, 507, 507], [a.text for a in answers]
    refused = next(a for a in answers if a.status_code == 507).json()["message"]
    assert "not enough memory" in refused and "loads under way" in refused
    used = tree_rss([server.pid, *(p.pid for p in server.descendants())])
    assert used <= limit_mb * 2**20, f"{used / 2**20:.0f} MB in use, limit {limit_mb} MB"
    listed = [m["modelName"] for m in server.client.get("/models").json()["models"]]
    assert len(listed) == 3
    for name in listed:
        assert server.client.post(f"/models/{name}/invoke", json=[[0.0] * (4 if name == "plain" else 10)]).status_code == 200
