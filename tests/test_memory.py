"""Density: a worker carries its own framework and nothing heavier."""

from pathlib import Path


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
