"""Load speed, memory and invoke latency of all six frameworks in one server, then 1,000 Prophet models.

    .venv/bin/python benchmarks/frameworks.py [--per-framework 20] [--prophet-customers 1000] [--jobs 2]

Part 1, per framework (sklearn, xgboost, pytorch, onnx, tensorflow, prophet): makes N distinct
small models (own seed, own weights; ``<root>/<fw>-<i>/model/...``), then

* measures the raw in-process load of the same artifacts in a fresh process per framework that
  first imports the framework as a worker does (its ``imports`` and ``setup``, the workers'
  thread environment), then times ``FRAMEWORK.load(FRAMEWORK.find(dir))`` on each artifact,
  keeping every model. The model's own in-memory size is taken there too: the RSS growth per
  later model, and (a second pass) the Python allocations tracemalloc sees per load. RSS misses
  what is served from already-mapped free heap, tracemalloc misses native memory (XGBoost,
  LibTorch, ONNX Runtime, TensorFlow), so "own" is the larger of the two.
* starts ONE multi-model server, loads every model of every framework (all six at once), and
  reports the first LoadModel of the framework (worker start + framework import), later
  LoadModel p50/p99 beside the raw load p50 (target <= 1.5x), the RSS growth of the whole process
  tree per later model beside the model's own size (target <= 2x own + 2 MB), and the invoke
  latency of a sequential client over the framework's models.

Part 2: trains ``--prophet-customers`` per-customer Prophet models with ``models.energy`` on
``--jobs`` processes, loads them all into a fresh server and reports memory, LoadModel and
invoke latency, and that ListModels (paginated) lists every one.

Issue 3's targets: later LoadModel <= 1.5x the raw in-process load; memory per added model
<= 2x its own size + 2 MB; 1,000 Prophet customer models loaded in one server.
"""

import argparse
import importlib
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.density import percentile  # noqa: E402
from harness.server import ServerProcess  # noqa: E402
from models import data  # noqa: E402
from server.shared.environment import fpmath_mode  # noqa: E402

FRAMEWORKS = ("sklearn", "xgboost", "pytorch", "onnx", "tensorflow", "prophet")
MB = 2**20
ROW = [0.5, -1.2, 3.3, 0.1]
# A JSON body each handler accepts for the models made below.
BODIES = {
    "sklearn": [ROW],
    "xgboost": [ROW],
    "pytorch": [ROW],
    "onnx": [ROW],
    "tensorflow": {"instances": [ROW]},
    "prophet": {"periods": 7},
}
LOAD_TARGET = 1.5  # later LoadModel / raw in-process load
MEMORY_FACTOR, MEMORY_EXTRA = 2.0, 2 * MB  # per added model <= 2x own + 2 MB


def say(*parts) -> None:
    print(*parts, flush=True)


# ---------------------------------------------------------------------------------- models


def _make_sklearn(target: Path, seed: int) -> None:
    import joblib
    from sklearn.linear_model import LogisticRegression

    X, y = data.classification(seed=seed)
    joblib.dump(LogisticRegression(max_iter=500).fit(X, y), target / "model.joblib")


def _make_xgboost(target: Path, seed: int) -> None:
    import xgboost

    X, y = data.classification(classes=2, seed=seed)
    params = {"objective": "binary:logistic", "max_depth": 3, "seed": seed, "nthread": 1}
    xgboost.train(params, xgboost.DMatrix(X, label=y), 20).save_model(target / "xgboost-model")


def _make_pytorch(target: Path, seed: int) -> None:
    import torch
    from torch import nn

    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3), nn.Softmax(dim=-1)).eval()
    torch.jit.script(model).save(str(target / "model.pt"))


def _make_onnx(target: Path, seed: int) -> None:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    X, y = data.classification(seed=seed)
    classifier = LogisticRegression(max_iter=500).fit(X, y)
    model = to_onnx(
        classifier,
        initial_types=[("input", FloatTensorType([None, X.shape[1]]))],
        options={id(classifier): {"zipmap": False}},
        target_opset=17,
    )
    (target / "model.onnx").write_bytes(model.SerializeToString())


def _make_tensorflow(target: Path, seed: int) -> None:
    import keras

    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input(shape=(4,), name="features"),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.export(str(target / "1"), verbose=False)  # <model>/1/saved_model.pb


MAKERS = {
    "sklearn": _make_sklearn,
    "xgboost": _make_xgboost,
    "pytorch": _make_pytorch,
    "onnx": _make_onnx,
    "tensorflow": _make_tensorflow,
}


def model_name(framework: str, index: int) -> str:
    return f"{framework}-{index:02d}"


def child_build(framework: str, root: Path, count: int, jobs: int) -> None:
    """Runs in its own process: write ``count`` distinct models of ``framework`` under ``root``."""
    if framework == "prophet":
        from models import energy

        readings = energy.generate(customers=count, seed=101)
        work = [
            (model_name("prophet", index), group, str(root))
            for index, (_, group) in enumerate(readings.groupby("customer_id", sort=True))
        ]
        with multiprocessing.get_context("spawn").Pool(max(1, min(jobs, count))) as pool:
            pool.map(energy.fit_one, work, chunksize=1)
        return
    from models.layout import model_dir

    for index in range(count):
        MAKERS[framework](model_dir(root, model_name(framework, index)), seed=1000 + index)


# ---------------------------------------------------------------------------------- raw loads


def artifact_bytes(artifact: Path) -> int:
    if artifact.is_dir():
        return sum(p.stat().st_size for p in artifact.rglob("*") if p.is_file())
    return artifact.stat().st_size


def child_raw(framework_name: str, root: Path, count: int, threads: int, requests: int, out: Path) -> None:
    """Runs in a fresh process: import the framework as a worker does, then time its loads."""
    import gc
    import tracemalloc

    process = psutil.Process()
    rss_start = process.memory_info().rss
    started = time.perf_counter()
    import handlers

    framework = handlers.get(framework_name)
    for module in framework.imports:
        importlib.import_module(module)
    if framework.setup is not None:
        framework.setup(threads, fpmath_mode())  # the mode a worker would be given
    import_seconds = time.perf_counter() - started
    artifacts = [framework.find(root / model_name(framework_name, i) / "model") for i in range(count)]

    kept, seconds, rss = [], [], [process.memory_info().rss]
    for artifact in artifacts:
        t0 = time.perf_counter()
        kept.append(framework.load(artifact))
        seconds.append(time.perf_counter() - t0)
        rss.append(process.memory_info().rss)

    # Second pass, timing discarded: the Python allocations each load keeps.
    gc.collect()
    tracemalloc.start()
    traced, again = [], []
    for artifact in artifacts:
        before = tracemalloc.get_traced_memory()[0]
        again.append(framework.load(artifact))
        traced.append(tracemalloc.get_traced_memory()[0] - before)
    tracemalloc.stop()
    del again

    # The same request as the server's invoke measurement, in process: decode, predict, encode.
    from handlers.context import Context

    body = json.dumps(BODIES[framework_name]).encode()
    headers = {"content-type": "application/json"}

    def invoke(model) -> float:
        t0 = time.perf_counter()
        context = Context(str(root), "application/json", headers)
        framework.encode(framework.predict(model, framework.decode(body, headers["content-type"], context), context),
                         None, context)
        return time.perf_counter() - t0

    for model in kept:
        invoke(model)  # first request of each model, as the server side does before measuring
    invokes = [invoke(kept[i % count]) for i in range(requests)]

    out.write_text(json.dumps({
        "invoke": invokes,
        "import_seconds": import_seconds,
        "rss_start": rss_start,
        "rss_imported": rss[0],
        "seconds": seconds,
        "rss": rss,
        "traced": traced,
        "disk": [artifact_bytes(a) for a in artifacts],
        "artifact": artifacts[0].name if artifacts[0].is_file() else f"{artifacts[0].name}/ (SavedModel)",
    }))


def run_child(args: list[str], env: dict | None = None) -> None:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", *args]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise RuntimeError(f"child {args[:2]} failed with exit code {done.returncode}")


def raw_loads(framework: str, root: Path, count: int, requests: int, tmp: Path) -> dict:
    from server.shared.environment import worker_environment

    threads = len(os.sched_getaffinity(0))  # the workers' intra-op share with one worker each
    out = tmp / f"raw-{framework}.json"
    run_child(["raw", framework, str(root), str(count), str(threads), str(requests), str(out)],
              env=worker_environment(threads, None))
    result = json.loads(out.read_text())
    later_rss = (result["rss"][-1] - result["rss"][1]) / max(1, count - 1)
    later_traced = float(np.mean(result["traced"][1:])) if count > 1 else float(result["traced"][0])
    result.update(
        first_load=result["seconds"][0],
        later=result["seconds"][1:] or result["seconds"],
        own_rss=later_rss,
        own_traced=later_traced,
        own=max(later_rss, later_traced, 0.0),
    )
    return result


# ---------------------------------------------------------------------------------- server


class Server(ServerProcess):
    """One multi-model server on a free port, its log in a file."""

    def __init__(self, models_root: Path, log_path: Path):
        env = {
            "SAGEMAKER_MULTI_MODEL": "true",
            "MODEL_SERVER_MODELS_ROOT": str(models_root),
            "MODEL_SERVER_LOG_LEVEL": "WARNING",
            "MODEL_SERVER_ACCEL_REPORT": "false",
        }
        super().__init__(env, log_path, timeout=600)

    def load(self, name: str, path: Path) -> float:  # type: ignore[override]
        t0 = time.perf_counter()
        response = super().load(name, path, expect=None)
        elapsed = time.perf_counter() - t0
        if response.status_code != 200:
            raise RuntimeError(f"LoadModel {name}: {response.status_code} {response.text}")
        return elapsed

    def describe(self, name: str) -> dict:
        response = self.client.get(f"/models/{name}")
        response.raise_for_status()
        return response.json()

    def invoke(self, name: str, body: bytes) -> float:
        t0 = time.perf_counter()
        response = self.client.post(f"/models/{name}/invoke", content=body, headers={"Content-Type": "application/json"})
        elapsed = time.perf_counter() - t0
        if response.status_code != 200:
            raise RuntimeError(f"invoke {name}: {response.status_code} {response.text[:300]}")
        return elapsed

    def listed(self) -> tuple[int, int]:
        """(models listed by ListModels following nextPageToken, pages)."""
        names, token, pages = [], None, 0
        while True:
            params = {"limit": 100, **({"next_page_token": token} if token else {})}
            response = self.client.get("/models", params=params)
            response.raise_for_status()
            answer = response.json()
            names += [m["modelName"] for m in answer["models"]]
            pages += 1
            token = answer.get("nextPageToken")
            if not token:
                return len(set(names)), pages

    def stop(self) -> None:  # type: ignore[override]
        super().stop(grace=60)
        lines = [line for line in self.log_path.read_text(errors="replace").splitlines() if line.strip()]
        if lines:
            say(f"  (server log: {len(lines)} line(s); last ones:)")
            for line in lines[-8:]:
                say("   ", line[:200])


def invoke_latencies(server: Server, names: list[str], body: bytes, requests: int) -> list[float]:
    return [server.invoke(names[i % len(names)], body) for i in range(requests)]


def process_memory(pid: int) -> dict[int, tuple[int, int]]:
    out = {}
    for process in [psutil.Process(pid)] + psutil.Process(pid).children(recursive=True):
        info = process.memory_full_info()
        out[process.pid] = (info.rss, info.pss)
    return out


# ---------------------------------------------------------------------------------- part 1


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def frameworks_part(root: Path, tmp: Path, count: int, jobs: int, requests: int) -> dict:
    say(f"\n######## Part 1: {count} models of each of the six frameworks, one server")
    for framework in FRAMEWORKS:
        started = time.perf_counter()
        run_child(["build", framework, str(root), str(count), str(jobs)])
        say(f"built {count} {framework} models in {time.perf_counter() - started:.1f}s")

    raw = {}
    for framework in FRAMEWORKS:
        started = time.perf_counter()
        raw[framework] = raw_loads(framework, root, count, requests, tmp)
        say(f"raw in-process loads of {framework} measured in {time.perf_counter() - started:.1f}s")

    server = Server(root, tmp / "server-frameworks.log")
    results = {}
    try:
        rss_empty, pss_empty = server.memory()
        say(f"\nempty server (front only): RSS {rss_empty / MB:.1f} MB, PSS {pss_empty / MB:.1f} MB")
        pings = []
        for _ in range(requests):
            t0 = time.perf_counter()
            server.client.get("/ping").raise_for_status()
            pings.append(time.perf_counter() - t0)
        floor = (percentile(pings, 50), percentile(pings, 99))
        say(f"HTTP round trip floor (GET /ping, same client): p50 {floor[0]:.2f} ms   p99 {floor[1]:.2f} ms")
        for framework in FRAMEWORKS:
            names = [model_name(framework, i) for i in range(count)]
            paths = [root / name / "model" for name in names]
            before = server.memory()
            first = server.load(names[0], paths[0])
            after_first = server.memory()
            later = [server.load(name, path) for name, path in zip(names[1:], paths[1:])]
            after_all = server.memory()
            described = [server.describe(name) for name in names]
            results[framework] = {
                "names": names, "first": first, "later": later,
                "before": before, "after_first": after_first, "after_all": after_all,
                "worker_seconds": [d["loadSeconds"] for d in described[1:]],
                "worker_bytes": [d["memoryBytes"] for d in described[1:]],
                "worker_pid": described[0]["workerPid"],
                "frameworks": {d["framework"] for d in described},
            }
            say(f"loaded {count} {framework} models: first {first * 1000:.0f} ms, later p50 {percentile(later, 50):.1f} ms")

        # Every model of every framework answers while all six are loaded at once.
        for framework in FRAMEWORKS:
            body = json.dumps(BODIES[framework]).encode()
            for name in results[framework]["names"]:
                server.invoke(name, body)
        listed, pages = server.listed()
        total = count * len(FRAMEWORKS)
        say(f"all {total} models answered one request each; ListModels lists {listed} in {pages} page(s)")
        rss_answered, pss_answered = server.memory()
        per_process = process_memory(server.pid)
        for framework in FRAMEWORKS:
            body = json.dumps(BODIES[framework]).encode()
            results[framework]["invoke"] = invoke_latencies(server, results[framework]["names"], body, requests)
        rss_end, pss_end = server.memory()
    finally:
        server.stop()

    say(f"\nwhole tree with all {total} models loaded: RSS {after_all[0] / MB:.1f} MB, PSS {after_all[1] / MB:.1f} MB;"
        f" after one request each: RSS {rss_answered / MB:.1f} MB, PSS {pss_answered / MB:.1f} MB;"
        f" after the invoke runs: RSS {rss_end / MB:.1f} MB")
    pids = {results[f]["worker_pid"]: f for f in FRAMEWORKS}
    say("  per process: " + ", ".join(
        f"{pids.get(pid, 'front')} {rss / MB:.0f}/{pss / MB:.0f} MB" for pid, (rss, pss) in per_process.items()
    ) + "  (RSS/PSS)")

    summary = []
    for framework in FRAMEWORKS:
        r, w = results[framework], raw[framework]
        added = max(1, count - 1)
        per_rss = (r["after_all"][0] - r["after_first"][0]) / added
        per_pss = (r["after_all"][1] - r["after_first"][1]) / added
        worker_start = r["after_first"][0] - r["before"][0]
        later_p50, later_p99 = percentile(r["later"], 50), percentile(r["later"], 99)
        raw_p50, raw_p99 = percentile(w["later"], 50), percentile(w["later"], 99)
        worker_p50 = percentile(r["worker_seconds"], 50)
        load_ratio = later_p50 / raw_p50 if raw_p50 > 0 else float("inf")
        allowance = MEMORY_FACTOR * w["own"] + MEMORY_EXTRA
        memory_ratio = per_rss / allowance
        inv_p50, inv_p99 = percentile(r["invoke"], 50), percentile(r["invoke"], 99)
        say(f"\n== {framework}: {count} models, {w['artifact']} of {np.mean(w['disk']) / 1024:.1f} KB on disk each"
            f" (server routed them to: {', '.join(sorted(r['frameworks']))})")
        say(f"LoadModel first (worker start + import):   {r['first'] * 1000:8.0f} ms"
            f"    raw: import {w['import_seconds'] * 1000:.0f} ms + first load {w['first_load'] * 1000:.1f} ms")
        say(f"LoadModel later:                p50 {later_p50:8.2f} ms   p99 {later_p99:8.2f} ms")
        say(f"raw in-process FRAMEWORK.load:  p50 {raw_p50:8.2f} ms   p99 {raw_p99:8.2f} ms")
        say(f"  ratio later/raw (p50): {load_ratio:.2f}x  (target <= {LOAD_TARGET}x: {verdict(load_ratio <= LOAD_TARGET)})")
        say(f"  of a later LoadModel, the worker's own load (DescribeModel loadSeconds) p50 {worker_p50:.2f} ms;"
            f" the rest (HTTP, front's detection and budget, IPC) ~{later_p50 - worker_p50:.2f} ms,"
            f" of which the bare HTTP round trip ~{floor[0]:.2f} ms")
        say(f"memory: worker start + import {worker_start / MB:.1f} MB RSS (raw process after import: "
            f"{w['rss_imported'] / MB:.1f} MB)")
        say(f"  per added model: tree RSS {per_rss / MB:7.3f} MB   PSS {per_pss / MB:7.3f} MB"
            f"   (worker-reported memoryBytes mean {np.mean(r['worker_bytes']) / MB:.3f} MB)")
        say(f"  own size: {w['own'] / MB:7.3f} MB  (raw RSS growth per model {w['own_rss'] / MB:.3f} MB,"
            f" tracemalloc {w['own_traced'] / MB:.3f} MB, disk {np.mean(w['disk']) / MB:.3f} MB)")
        say(f"  per added / (2 x own + 2 MB = {allowance / MB:.3f} MB): {memory_ratio:.2f}  ({verdict(memory_ratio <= 1)});"
            f"  per added / own: {per_rss / w['own'] if w['own'] > 0 else float('inf'):.1f}x")
        say(f"invoke ({len(r['invoke'])} sequential requests over {count} models): p50 {inv_p50:.2f} ms   p99 {inv_p99:.2f} ms"
            f"   (in process, decode+predict+encode: p50 {percentile(w['invoke'], 50):.2f} ms"
            f"   p99 {percentile(w['invoke'], 99):.2f} ms)")
        summary.append((framework, r["first"] * 1000, later_p50, later_p99, raw_p50, load_ratio,
                        per_rss / MB, w["own"] / MB, memory_ratio, inv_p50, inv_p99))

    say("\n== summary (times in ms, memory in MB per added model)")
    say(f"{'framework':<11}{'first':>8}{'later50':>9}{'later99':>9}{'raw50':>8}{'ratio':>7}{'':>3}"
        f"{'added':>8}{'own':>8}{'vs tgt':>8}{'':>3}{'inv50':>8}{'inv99':>8}")
    for (framework, first, l50, l99, r50, ratio, added, own, mratio, i50, i99) in summary:
        say(f"{framework:<11}{first:>8.0f}{l50:>9.2f}{l99:>9.2f}{r50:>8.2f}{ratio:>6.2f}x"
            f"{'' if ratio <= LOAD_TARGET else ' !':<3}{added:>8.3f}{own:>8.3f}{mratio:>8.2f}"
            f"{'' if mratio <= 1 else ' !':<3}{i50:>8.2f}{i99:>8.2f}")
    say(f"(ratio: later LoadModel p50 / raw load p50, target <= {LOAD_TARGET}; vs tgt: added / (2 x own + 2 MB),"
        " target <= 1; '!' marks a miss)")
    return raw


# ---------------------------------------------------------------------------------- part 2


def prophet_part(tmp: Path, customers: int, jobs: int, budget: float, requests: int, own: float) -> None:
    from models import energy

    say(f"\n######## Part 2: {customers} Prophet customer models in one server"
        f" (load average {' '.join(f'{x:.2f}' for x in os.getloadavg())})")
    out_root = tmp / "energy"
    out_root.mkdir()
    started = time.perf_counter()
    readings = energy.generate(customers=customers, seed=7)
    work = [(customer, group, str(out_root)) for customer, group in readings.groupby("customer_id", sort=True)]
    del readings
    say(f"generated {len(work)} customers' readings in {time.perf_counter() - started:.1f}s; training on {jobs} process(es)")
    trained: dict[str, float] = {}
    started = time.perf_counter()
    step = max(1, len(work) // 10)
    stopped_early = False
    with multiprocessing.get_context("spawn").Pool(max(1, min(jobs, len(work)))) as pool:
        for customer, seconds in pool.imap_unordered(energy.fit_one, work, chunksize=1):
            trained[customer] = seconds
            elapsed = time.perf_counter() - started
            if len(trained) % step == 0 or len(trained) == len(work):
                say(f"  trained {len(trained)}/{len(work)} in {elapsed:.0f}s")
            if elapsed > budget and len(trained) < len(work):
                stopped_early = True
                pool.terminate()
                break
    del work
    wall = time.perf_counter() - started
    fits = list(trained.values())
    say(f"trained {len(trained)} models in {wall:.0f}s wall (fit p50 {percentile(fits, 50) / 1000:.2f}s each)"
        + (f"; STOPPED at the {budget:.0f}s training budget" if stopped_early else ""))
    names = sorted(trained)
    disk = np.mean([(out_root / n / "model" / "model.json").stat().st_size for n in names])

    server = Server(out_root, tmp / "server-prophet.log")
    try:
        rss0, pss0 = server.memory()
        first = server.load(names[0], out_root / names[0] / "model")
        rss1, pss1 = server.memory()
        later = []
        started = time.perf_counter()
        step = max(1, len(names) // 5)
        for index, name in enumerate(names[1:], start=2):
            later.append(server.load(name, out_root / name / "model"))
            if index % step == 0:
                say(f"  loaded {index}/{len(names)} in {time.perf_counter() - started:.0f}s")
        rss2, pss2 = server.memory()
        per_process = process_memory(server.pid)
        listed, pages = server.listed()
        chosen = names[:: max(1, len(names) // 5)][:5]
        latencies = invoke_latencies(server, chosen, json.dumps({"periods": 7}).encode(), requests)
        worker = server.describe(names[-1])
    finally:
        server.stop()

    added = max(1, len(names) - 1)
    say(f"\nmodels loaded: {len(names)} (ListModels, {pages} page(s) of <= 100: {listed})"
        f"  -> {verdict(listed == len(names) == customers)} (target: {customers} loaded in one server)")
    say(f"model.json: {disk / 1024:.0f} KB on disk each")
    say(f"memory, empty server:       RSS {rss0 / MB:8.1f} MB   PSS {pss0 / MB:8.1f} MB")
    say(f"memory, first model:        RSS {rss1 / MB:8.1f} MB   PSS {pss1 / MB:8.1f} MB  (Prophet worker started)")
    say(f"memory, all {len(names)} models: RSS {rss2 / MB:8.1f} MB   PSS {pss2 / MB:8.1f} MB")
    say("  per process: " + ", ".join(
        f"{'prophet worker' if pid == worker['workerPid'] else 'front'} {rss / MB:.0f}/{pss / MB:.0f} MB"
        for pid, (rss, pss) in per_process.items()) + "  (RSS/PSS)")
    per_rss = (rss2 - rss1) / added
    allowance = MEMORY_FACTOR * own + MEMORY_EXTRA
    say(f"per added model:            RSS {per_rss / MB:8.3f} MB   PSS {(pss2 - pss1) / added / MB:8.3f} MB"
        f"   (own size from part 1: {own / MB:.3f} MB; per added / (2 x own + 2 MB) = {per_rss / allowance:.2f},"
        f" {verdict(per_rss <= allowance)})")
    say(f"LoadModel: first {first * 1000:.0f} ms (worker start + import); later p50 {percentile(later, 50):.1f} ms"
        f"   p99 {percentile(later, 99):.1f} ms   (total {sum(later) + first:.0f}s)")
    say(f"invoke {{\"periods\": 7}} ({len(latencies)} sequential requests over {len(chosen)} customers):"
        f" p50 {percentile(latencies, 50):.1f} ms   p99 {percentile(latencies, 99):.1f} ms")


# ---------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-framework", type=int, default=20, help="models of each framework (part 1)")
    parser.add_argument("--prophet-customers", type=int, default=1000, help="Prophet customer models (part 2)")
    parser.add_argument("--jobs", type=int, default=2, help="processes fitting Prophet models")
    parser.add_argument("--requests", type=int, default=200, help="sequential invoke requests per measurement")
    parser.add_argument("--train-budget", type=float, default=900.0,
                        help="seconds of Prophet training after which part 2 serves what was trained")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, framework, root, count, *rest = args.child
        if kind == "build":
            child_build(framework, Path(root), int(count), int(rest[0]))
        else:
            child_raw(framework, Path(root), int(count), int(rest[0]), int(rest[1]), Path(rest[2]))
        return
    if args.per_framework < 2 or args.prophet_customers < 1 or args.jobs < 1:
        parser.error("--per-framework must be at least 2, --prophet-customers and --jobs at least 1")

    started = time.perf_counter()
    say(f"{len(os.sched_getaffinity(0))} CPUs, {psutil.virtual_memory().total / 2**30:.1f} GB;"
        f" load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="bench-frameworks-") as tmp:
        tmp = Path(tmp)
        root = tmp / "models"
        root.mkdir()
        raw = frameworks_part(root, tmp, args.per_framework, args.jobs, args.requests)
        prophet_part(tmp, args.prophet_customers, args.jobs, args.train_budget, args.requests, raw["prophet"]["own"])
    say(f"\ntotal {time.perf_counter() - started:.0f}s; load average now {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
