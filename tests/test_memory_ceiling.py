"""The server under a real memory ceiling: a cgroup of 1.5 GB that the kernel enforces, which the
server is not told of (no MODEL_SERVER_MEMORY_LIMIT_MB) and must find for itself.

The test plays the platform: it loads memory-hungry models of several frameworks (scikit-learn
k-nearest-neighbours models that keep tens of MB of training data, a PyTorch network of tens of
MB, and ``model_fn``s that allocate far more than their 1 kB files promise) until 507s come,
then unloads the least recently used model and loads again, while invokes with large bodies run
all the while; and once near the limit it sends six loads at once of allocating models it never
loaded before. It holds when the kernel's OOM killer never fires and no worker dies, no LoadModel
answers 500, every model the server lists answers 200, and the memory in use stays within the
limit (what the budget allows, the limit less the headroom, overshot by no more than the headroom).
The kernel keeps what it charges at the limit by reclaiming or killing, so the OOM count is the
decisive check; the sampled peak is printed to show how close the run came.
"""

import io
import os
import random
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest

from models import data
from tests.builders import knn_model, sklearn_model
from tests.cgroup_support import MemoryCgroup

MB = 2**20
LIMIT = 1536 * MB
HEADROOM = 256 * MB  # the server's default (MODEL_SERVER_MEMORY_HEADROOM_MB)
PLAY_SECONDS = 30
BURST = 6  # allocating models loaded at once, none of them loaded before: their excess is unknown
ALLOCATES_MB = 200  # a model_fn's ballast: more than a hundred thousand times its file, less than the headroom

ALLOCATING_CODE = f"""
import os, joblib
import numpy as np

def model_fn(model_dir):
    model = joblib.load(os.path.join(model_dir, "model.joblib"))
    model.ballast = np.ones({ALLOCATES_MB} * 2**20 // 8)  # touched: resident at once
    return model
"""


@pytest.fixture
def cgroup():
    made = MemoryCgroup.make(LIMIT)
    if isinstance(made, str):
        pytest.skip(f"no memory cgroup can be made here: {made}")
    yield made
    made.remove()


def torch_network(directory: Path) -> Path:
    """A TorchScript MLP of about 38 MB (256 -> 4096 -> 2048 -> 8), trained a little on generated data."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    X, y = data.classification(rows=512, features=256, classes=8, seed=3)
    model = nn.Sequential(nn.Linear(256, 4096), nn.ReLU(), nn.Linear(4096, 2048), nn.ReLU(), nn.Linear(2048, 8))
    optimiser = torch.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(3):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(model(torch.as_tensor(X, dtype=torch.float32)), torch.as_tensor(y)).backward()
        optimiser.step()
    directory.mkdir(parents=True, exist_ok=True)
    torch.jit.script(model.eval()).save(str(directory / "model.pt"))
    return directory


def linked(source: Path, target: Path) -> Path:
    """Another model directory with the same files (hard links): another model to the server."""
    target.mkdir(parents=True)
    for path in source.iterdir():
        os.link(path, target / path.name)
    return target


def npy(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


@pytest.fixture
def catalogue(tmp_path):
    """name -> (model directory, request body, content type): what the platform will place."""
    rng = np.random.default_rng(0)
    knn_body = "\n".join(",".join(f"{v:.4f}" for v in row) for row in rng.normal(size=(20, 10))).encode()
    wide_body = "\n".join(",".join(f"{v:.3f}" for v in row) for row in rng.normal(size=(100_000, 4))).encode()  # ~2.6 MB
    torch_body = npy(rng.normal(size=(4000, 256)).astype(np.float32))  # 4 MB
    models = {}
    knns = [knn_model(tmp_path / "store" / f"knn{seed}", megabytes=32, seed=seed) for seed in range(3)]
    for index in range(12):
        models[f"knn-{index}"] = (linked(knns[index % 3], tmp_path / f"knn-{index}" / "model"), knn_body, "text/csv")
    net = torch_network(tmp_path / "store" / "net")
    for index in range(3):
        models[f"net-{index}"] = (linked(net, tmp_path / f"net-{index}" / "model"), torch_body, "application/x-npy")
    for index in range(BURST):
        directory = sklearn_model(tmp_path / f"alloc-{index}" / "model", code=ALLOCATING_CODE)
        models[f"alloc-{index}"] = (directory, wide_body, "text/csv")
    return models


class Platform:
    """The platform's side: what it believes is loaded, in least-recently-used order, and what went wrong."""

    def __init__(self, client: httpx.Client, catalogue: dict):
        self.client = client
        self.catalogue = catalogue
        self.lock = threading.Lock()
        self.loaded: dict[str, float] = {}  # name -> last use
        self.generation: dict[str, int] = {}  # bumped at each unload: an invoke racing it may 404
        self.codes: dict[str, int] = {}
        self.problems: list[str] = []
        self.invokes = 0

    def count(self, what: str) -> None:
        with self.lock:
            self.codes[what] = self.codes.get(what, 0) + 1

    def load(self, name: str) -> None:
        """LoadModel, evicting the least recently used model at each 507 (as the platform does)."""
        for _ in range(len(self.catalogue)):
            answer = self.client.post("/models", json={"model_name": name, "url": str(self.catalogue[name][0])})
            self.count(f"load {answer.status_code}")
            if answer.status_code == 200:
                with self.lock:
                    self.loaded[name] = time.monotonic()
                return
            if answer.status_code != 507:
                self.problems.append(f"LoadModel {name}: {answer.status_code} {answer.text[:300]}")
                return
            with self.lock:
                if not self.loaded:  # this instance cannot hold it: the platform places it elsewhere
                    self.codes["507 with nothing to evict"] = self.codes.get("507 with nothing to evict", 0) + 1
                    nothing_to_evict = True
                else:
                    nothing_to_evict = False
                    victim = min(self.loaded, key=self.loaded.__getitem__)
                    del self.loaded[victim]
                    self.generation[victim] = self.generation.get(victim, 0) + 1
            if nothing_to_evict:
                time.sleep(0.2)  # as the platform would, before it tries this instance again
                return
            gone = self.client.delete(f"/models/{victim}")
            self.count(f"unload {gone.status_code}")
            if gone.status_code != 200:
                self.problems.append(f"UnloadModel {victim}: {gone.status_code} {gone.text[:300]}")

    def invoke_one(self, client: httpx.Client, rng: random.Random) -> None:
        with self.lock:
            name = rng.choice(sorted(self.loaded)) if self.loaded else None
            if name is not None:
                self.loaded[name] = time.monotonic()
                generation = self.generation.get(name, 0)
        if name is None:
            time.sleep(0.05)
            return
        _, body, content_type = self.catalogue[name]
        answer = client.post(f"/models/{name}/invoke", content=body, headers={"Content-Type": content_type})
        self.count(f"invoke {answer.status_code}")
        with self.lock:
            self.invokes += 1
            unloaded_meanwhile = self.generation.get(name, 0) != generation
        if answer.status_code != 200 and not (answer.status_code == 404 and unloaded_meanwhile):
            self.problems.append(f"invoke {name}: {answer.status_code} {answer.text[:300]}")


def test_the_platform_fills_a_real_cgroup_and_hears_507_before_any_oom_kill(start_server, cgroup, catalogue, tmp_path):
    env = {k: v for k, v in os.environ.items() if k.startswith("MODEL_SERVER_MEMORY")}
    assert not env, f"the server must find the limit itself, not be told: {env}"
    # Six load threads per worker (two by default), so that the burst below really runs side by side.
    server = start_server(wrapper=cgroup.wrapper, SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=tmp_path,
                          MODEL_SERVER_LOAD_THREADS=str(BURST))
    assert server.pid in cgroup.pids()
    limit = next(line for line in server.client.get("/metrics").text.splitlines() if line.startswith("server_memory_limit_bytes"))
    assert int(float(limit.split()[1])) == LIMIT, f"the budget did not take the cgroup's limit: {limit}"

    samples: list[tuple[int, int]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append(cgroup.usage())
            time.sleep(0.05)

    platform = Platform(httpx.Client(base_url=server.url, timeout=120), catalogue)

    def invoker(seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=server.url, timeout=120) as client:
            while not done.is_set():
                platform.invoke_one(client, rng)

    threads = [threading.Thread(target=sample)] + [threading.Thread(target=invoker, args=(seed,)) for seed in range(3)]
    for thread in threads:
        thread.start()
    try:
        # Warm up both frameworks, then LoadModel all the allocating models at once: each promises
        # 1 MB and takes 200, more together than the cgroup has left. Loads that could take more
        # than their estimates must not be let run side by side near the limit.
        platform.load("net-0")
        platform.load("knn-0")
        barrier = threading.Barrier(BURST)

        def burst(index: int) -> None:
            with httpx.Client(base_url=server.url, timeout=120) as client:
                barrier.wait()
                answer = client.post("/models", json={"model_name": f"alloc-{index}", "url": str(catalogue[f"alloc-{index}"][0])})
            platform.count(f"burst {answer.status_code}")
            if answer.status_code == 200:
                with platform.lock:
                    platform.loaded[f"alloc-{index}"] = time.monotonic()
            elif answer.status_code != 507:
                platform.problems.append(f"LoadModel alloc-{index}: {answer.status_code} {answer.text[:300]}")

        loaders = [threading.Thread(target=burst, args=(index,)) for index in range(BURST)]
        for thread in loaders:
            thread.start()
        for thread in loaders:
            thread.join()
        assert cgroup.oom_kills() == 0, f"the burst of loads ran the cgroup out of memory: {platform.codes}"

        names = list(catalogue)
        order = random.Random(1)
        deadline = time.monotonic() + PLAY_SECONDS
        rounds = 0
        while time.monotonic() < deadline and not platform.problems:
            wanted = [n for n in names if n not in platform.loaded]
            platform.load(order.choice(wanted) if wanted else names[rounds % len(names)])
            rounds += 1
    finally:
        done.set()
        for thread in threads:
            thread.join()
        platform.client.close()

    workers = {p.pid for p in server.descendants()}
    assert workers and workers <= set(cgroup.pids()), "the workers were started outside the cgroup"
    # Every model the server lists (READY) answers.
    listed = [m["modelName"] for m in server.client.get("/models").json()["models"]]
    for name in listed:
        described = server.client.get(f"/models/{name}").json()
        assert described["status"] == "READY", described
        _, body, content_type = catalogue[name]
        answer = server.client.post(f"/models/{name}/invoke", content=body, headers={"Content-Type": content_type})
        assert answer.status_code == 200, f"{name}: {answer.status_code} {answer.text[:300]}"

    metrics = server.client.get("/metrics").text
    deaths = [line for line in metrics.splitlines() if line.startswith(("worker_restarts_total{", "worker_hangs_total{"))
              and float(line.split()[-1]) > 0]
    peak_charged = max(s[0] for s in samples)
    peak_in_use = max(s[1] for s in samples)
    resident = {p.pid: p.memory_info().rss // MB for p in [psutil.Process(server.pid), *server.descendants()]}
    report = (f"resident MB by pid {resident}; {rounds} loads asked, {platform.invokes} invokes, answers {dict(sorted(platform.codes.items()))}; "
              f"peak charged {peak_charged / MB:.0f} MB, peak in use {peak_in_use / MB:.0f} MB of {LIMIT / MB:.0f} MB")
    print(report)
    assert cgroup.oom_kills() == 0, f"the OOM killer fired {cgroup.oom_kills()} times; {report}"
    assert not deaths, f"workers died: {deaths}; {report}"
    assert not platform.problems, f"{platform.problems[:5]}; {report}"
    assert platform.codes.get("load 507", 0) > 0, f"the ceiling was never reached: {report}"
    assert platform.codes.get("unload 200", 0) > 0 and platform.codes.get("load 200", 0) > len(listed), report
    assert peak_in_use <= LIMIT - HEADROOM + HEADROOM, report
