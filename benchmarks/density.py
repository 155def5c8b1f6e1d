"""Density, load speed and request throughput of one server holding many small models.

    .venv/bin/python benchmarks/density.py [--models 1000] [--seconds 5]

Trains N small scikit-learn and XGBoost models (half each, each on its own generated data),
starts the server in multi-model mode, loads them all, and prints: memory of the whole process
tree (RSS and PSS) and per added model, LoadModel p50/p99, then invoke latency and throughput at
1 and 8 clients for one model beside a bare endpoint of the same HTTP stack (the floor).
Targets (issue 2): <= 5 MB per added model, LoadModel p50 <= 50 ms, 8-client throughput >= 40%
of the floor. The incumbent (multi-model-server + sagemaker-inference) measured ~90 MB and
~1.15 s per model and ~1,100 requests/s at 8 clients.
"""

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import charts  # noqa: E402
from benchmarks.loadgen import measure  # noqa: E402
from harness.server import ServerProcess, free_port, tree_memory  # noqa: E402
from models import data  # noqa: E402

# A model that costs nothing to run: what is left is the cost of serving it.
NOOP_MODEL = """
import numpy as np

class NoOp:
    def predict(self, rows):
        return np.zeros(len(rows))

def model_fn(model_dir):
    return NoOp()
"""
INCUMBENT_MB_PER_MODEL = 90  # multi-model-server + sagemaker-inference, measured for issue 2
INVOKED = (("sklearn", "m0000"), ("xgboost", "m0001"), ("no-op", "noop"))


def build_models(root: Path, count: int) -> list[tuple[str, Path]]:
    import joblib
    import xgboost
    from sklearn.linear_model import LogisticRegression

    made = []
    for index in range(count):
        target = root / f"m{index:04d}" / "model"
        target.mkdir(parents=True)
        X, y = data.classification(rows=200, classes=2, seed=index)
        if index % 2 == 0:
            joblib.dump(LogisticRegression().fit(X, y), target / "model.joblib")
        else:
            booster = xgboost.train({"objective": "binary:logistic", "max_depth": 3}, xgboost.DMatrix(X, label=y), 10)
            booster.save_model(target / "model.ubj")
        made.append((f"m{index:04d}", target))
    return made


def wait_for_ping(url: str, timeout: float = 60) -> None:
    """For the floor endpoint, which is not our server."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/ping").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the floor endpoint did not start")


def percentile(values, q) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    mb = 2**20

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        models = build_models(root, args.models)
        print(f"built {len(models)} models in {time.perf_counter() - started:.0f}s")

        env = {"SAGEMAKER_MULTI_MODEL": "true", "MODEL_SERVER_MODELS_ROOT": str(root), "MODEL_SERVER_LOG_LEVEL": "WARNING"}
        server = ServerProcess(env, root / "server.log")
        port, client = server.port, server.client
        try:
            rss0, pss0 = tree_memory(server.pid)
            first = {}
            load_times = []
            for index, (name, path) in enumerate(models):
                t0 = time.perf_counter()
                response = client.post("/models", json={"model_name": name, "url": str(path)})
                elapsed = time.perf_counter() - t0
                assert response.status_code == 200, response.text
                if index < 2:
                    first[name] = elapsed  # includes starting the framework's worker
                else:
                    load_times.append(elapsed)
                if index == 1:
                    rss1, pss1 = tree_memory(server.pid)
            rss2, pss2 = tree_memory(server.pid)
            added = len(models) - 2
            print("\n== memory (front + workers)")
            print(f"empty server:            RSS {rss0 / mb:8.1f} MB   PSS {pss0 / mb:8.1f} MB")
            print(f"first model of each fw:  RSS {rss1 / mb:8.1f} MB   PSS {pss1 / mb:8.1f} MB  (framework imports)")
            print(f"all {len(models)} models:        RSS {rss2 / mb:8.1f} MB   PSS {pss2 / mb:8.1f} MB")
            print(f"per added model:         RSS {(rss2 - rss1) / added / mb:8.3f} MB   PSS {(pss2 - pss1) / added / mb:8.3f} MB"
                  f"   (target <= 5 MB; incumbent ~90 MB)")
            print("\n== LoadModel")
            print(f"first sklearn / xgboost (worker start): {', '.join(f'{v * 1000:.0f} ms' for v in first.values())}")
            print(f"later models: p50 {percentile(load_times, 50):.1f} ms   p99 {percentile(load_times, 99):.1f} ms"
                  f"   (target p50 <= 50 ms; incumbent ~1150 ms)")

            body = b"0.5,-1.2,3.3,0.1"
            headers = {"Content-Type": "text/csv"}
            noop = root / "noop" / "model"
            (noop / "code").mkdir(parents=True)
            (noop / "code" / "inference.py").write_text(NOOP_MODEL)
            assert client.post("/models", json={"model_name": "noop", "url": str(noop)}).status_code == 200
            ours = {
                (label, c): measure(port, f"/models/{name}/invoke", body, headers, c, args.seconds)
                for label, name in INVOKED for c in (1, 8)
            }
        finally:
            server.stop()

        floor_port = free_port()
        floor = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "floor.py"), str(floor_port)], cwd=ROOT)
        try:
            wait_for_ping(f"http://127.0.0.1:{floor_port}")
            bare = {c: measure(floor_port, "/models/m0000/invoke", body, headers, c, args.seconds) for c in (1, 8)}
        finally:
            floor.send_signal(signal.SIGTERM)
            floor.wait(30)

    print("\n== invoke one model (CSV in, JSON out) vs the bare endpoint of the same HTTP stack")
    print(f"{'model':>8} {'clients':>7} {'server req/s':>13} {'p50 ms':>7} {'p99 ms':>7} | {'floor req/s':>12} {'p50 ms':>7} {'p99 ms':>7} | ratio")
    for label, _ in INVOKED:
        for c in (1, 8):
            o, b = ours[(label, c)], bare[c]
            print(f"{label:>8} {c:>7} {o['requests_per_s']:>13.0f} {o['p50_ms']:>7.2f} {o['p99_ms']:>7.2f} | "
                  f"{b['requests_per_s']:>12.0f} {b['p50_ms']:>7.2f} {b['p99_ms']:>7.2f} | {o['requests_per_s'] / b['requests_per_s']:.0%}")
    print("(target: 8-client ratio >= 40%; incumbent ~1,100 req/s at 8 clients. 'no-op' is a model whose")
    print(" predict returns at once: the cost of serving alone. sklearn's own predict of one row is ~0.2 ms.)")
    per_model = {"this server": {"RSS": (rss2 - rss1) / added / mb, "PSS": (pss2 - pss1) / added / mb},
                 "multi-model-server (issue 2)": {"RSS": INCUMBENT_MB_PER_MODEL}}
    drawn = charts.bars("density-memory-per-model", f"memory per added model, {added} small models", per_model, "MB",
                        targets={"target 5 MB": 5}, log_y=True, note="scikit-learn and XGBoost models; the whole process tree")
    print(f"\ncharts: {drawn}")


if __name__ == "__main__":
    main()
