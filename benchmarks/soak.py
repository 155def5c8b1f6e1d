"""A soak: many models, faults on a schedule, every answer checked, resources compared start to end.

    .venv/bin/python benchmarks/soak.py [--minutes 20] [--models 200] [--clients 6] [--kill-every 30]

For the set time it runs, against one real server (multi-model mode):

- invokes across ``--models`` models of four frameworks (scikit-learn, XGBoost, PyTorch, ONNX; each
  model trained or drawn on its own seed, so a request answered by the wrong model is caught),
  picked by Zipf's law (a few hot, a long cold tail), each answer checked against the model's
  known output, computed in this process by the library itself;
- a load/unload churn of the cold models (the platform's LRU);
- a worker SIGKILLed every ``--kill-every`` seconds, the frameworks in turn;
- a poison model (its ``predict_fn`` ends its worker) loaded now and then, invoked until it is
  quarantined, then unloaded;
- slow clients, whose bodies trickle in over about a second.

It prints, and checks: requests lost (only a request in flight when its framework's worker was
killed may fail, and then only with a 503 that says the worker died; a request to a model the
churn had just unloaded may get its 404), wrong answers (none), the RSS, open descriptors and
threads of the front and of each framework's worker after warm-up and at the end (flat within
5%, with a few threads or descriptors of slack), p50/p99 per minute, restarts and quarantines.
Exit status 1 if a check fails. ``tests/test_soak.py`` runs it for two minutes.
"""

import argparse
import json
import os
import random
import signal
import socket
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.server import ServerProcess  # noqa: E402
from models import data  # noqa: E402

FRAMEWORKS = ("sklearn", "xgboost", "pytorch", "onnx")
FEATURES = 4
CSV = {"Content-Type": "text/csv", "Accept": "application/json"}
POISON_CODE = """
import os

import joblib


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def predict_fn(data, model):
    os._exit(3)  # a segfaulting library, as far as the server can tell
"""


@dataclass(frozen=True)
class Model:
    name: str
    framework: str
    directory: Path
    body: bytes  # CSV rows
    expected: np.ndarray  # what the library itself answers for them


def _rows(seed: int) -> np.ndarray:
    return np.random.default_rng(10_000 + seed).normal(size=(2, FEATURES)).astype(np.float32)


def _csv(rows: np.ndarray) -> bytes:
    return "\n".join(",".join(repr(float(v)) for v in row) for row in rows).encode()


def _linear(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(FEATURES, 3)).astype(np.float32), rng.normal(size=3).astype(np.float32)


def build_model(root: Path, index: int) -> Model:
    """Model ``index``: its framework by turn, its weights or data from its own seed."""
    framework = FRAMEWORKS[index % len(FRAMEWORKS)]
    name = f"soak-{framework}-{index:04d}"
    directory = root / name / "model"
    directory.mkdir(parents=True)
    rows = _rows(index)
    if framework == "sklearn":
        import joblib
        from sklearn.linear_model import LogisticRegression

        X, y = data.classification(rows=120, features=FEATURES, classes=3, seed=index)
        model = LogisticRegression(max_iter=300).fit(X, y)
        joblib.dump(model, directory / "model.joblib")
        expected = model.predict(rows)
    elif framework == "xgboost":
        import xgboost

        X, y = data.classification(rows=120, features=FEATURES, classes=2, seed=index)
        booster = xgboost.train({"objective": "binary:logistic", "max_depth": 3}, xgboost.DMatrix(X, label=y), 8)
        booster.save_model(directory / "xgboost-model")
        expected = booster.predict(xgboost.DMatrix(rows))
    elif framework == "pytorch":
        import torch

        weight, bias = _linear(index)
        layer = torch.nn.Linear(FEATURES, 3)
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(weight.T.copy()))
            layer.bias.copy_(torch.from_numpy(bias))
        torch.jit.save(torch.jit.script(layer.eval()), str(directory / "model.pt"))
        expected = rows @ weight + bias
    else:
        from onnx import TensorProto, helper, numpy_helper

        weight, bias = _linear(index)
        graph = helper.make_graph(
            [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])], "linear",
            inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", FEATURES])],
            outputs=[helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
            initializer=[numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "b")],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
        (directory / "model.onnx").write_bytes(model.SerializeToString())
        expected = rows @ weight + bias
    return Model(name, framework, directory, _csv(rows), np.asarray(expected, dtype=np.float64))


def build_poison(root: Path) -> Path:
    import joblib
    from sklearn.linear_model import LogisticRegression

    directory = root / "soak-poison" / "model"
    (directory / "code").mkdir(parents=True)
    X, y = data.classification(rows=60, features=FEATURES, classes=2, seed=99)
    joblib.dump(LogisticRegression().fit(X, y), directory / "model.joblib")
    (directory / "code" / "inference.py").write_text(POISON_CODE)
    return directory


def correct(model: Model, body: bytes) -> bool:
    try:
        answer = np.asarray(json.loads(body), dtype=np.float64)
    except (ValueError, TypeError):
        return False
    if answer.shape != model.expected.shape:
        answer = answer.reshape(model.expected.shape) if answer.size == model.expected.size else answer
    return answer.shape == model.expected.shape and bool(np.allclose(answer, model.expected, rtol=1e-4, atol=1e-4))


@dataclass
class Outcome:
    started: float
    ended: float
    model: Model
    status: int  # 0: no answer (connection error, timeout)
    message: str = ""
    right: bool = False


@dataclass
class Events:
    """What the faults and the churn did, and when; guarded by one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    kills: list[tuple[float, str]] = field(default_factory=list)  # (time, framework) of a worker's death we caused
    absent: dict[str, int] = field(default_factory=dict)  # model -> churn generation while it is unloaded or reloading
    generation: Counter = field(default_factory=Counter)  # model -> times the churn touched it
    sigkills: int = 0
    poison_invokes: int = 0
    quarantines: int = 0
    poison_loads: int = 0
    churned: int = 0
    problems: list[str] = field(default_factory=list)

    def churn_state(self, name: str) -> tuple[bool, int]:
        with self.lock:
            return name in self.absent, self.generation[name]

    def died_during(self, framework: str, started: float, ended: float) -> bool:
        with self.lock:
            return any(framework == killed and started - 0.5 <= at <= ended + 0.5 for at, killed in self.kills)


class Soak:
    def __init__(self, server: ServerProcess, models: list[Model], poison: Path, args: argparse.Namespace):
        self.server = server
        self.models = models
        self.by_framework = defaultdict(list)
        for model in models:
            self.by_framework[model.framework].append(model)
        self.poison = poison
        self.args = args
        self.events = Events()
        self.outcomes: list[Outcome] = []
        self.outcomes_lock = threading.Lock()
        self.stop = threading.Event()
        ranks = np.arange(1, len(models) + 1, dtype=np.float64)
        weights = ranks ** -args.zipf
        self.weights = weights / weights.sum()
        self.order = list(models)
        random.Random(args.seed).shuffle(self.order)  # which models are hot: not one framework's

    # ------------------------------------------------------------------ clients

    def client(self, index: int) -> None:
        rng = np.random.default_rng(self.args.seed + index)
        with httpx.Client(base_url=self.server.url, timeout=90) as client:
            while not self.stop.is_set():
                model = self.order[int(rng.choice(len(self.order), p=self.weights))]
                absent, generation = self.events.churn_state(model.name)
                started = time.monotonic()
                try:
                    response = client.post(f"/models/{model.name}/invoke", content=model.body, headers=CSV)
                    outcome = Outcome(started, time.monotonic(), model, response.status_code)
                    if response.status_code == 200:
                        outcome.right = correct(model, response.content)
                    else:
                        outcome.message = response.text[:200]
                except httpx.HTTPError as err:
                    outcome = Outcome(started, time.monotonic(), model, 0, f"{type(err).__name__}: {err}")
                if outcome.status == 404:
                    after = self.events.churn_state(model.name)
                    if absent or after[0] or after[1] != generation:
                        outcome.message = "churn"
                self.record(outcome)

    def slow_client(self, index: int) -> None:
        """One request at a time on a raw socket, its body sent in four parts over about a second."""
        rng = random.Random(self.args.seed * 31 + index)
        while not self.stop.is_set():
            model = rng.choice(self.models[: max(8, len(self.models) // 10)])
            absent, generation = self.events.churn_state(model.name)
            head = (f"POST /models/{model.name}/invoke HTTP/1.1\r\nHost: soak\r\nContent-Type: text/csv\r\n"
                    f"Accept: application/json\r\nContent-Length: {len(model.body)}\r\nConnection: close\r\n\r\n").encode()
            started = time.monotonic()
            status, payload = 0, b""
            try:
                with socket.create_connection(("127.0.0.1", self.server.port), timeout=90) as sock:
                    sock.sendall(head)
                    quarter = max(1, len(model.body) // 4)
                    for part in range(0, len(model.body), quarter):
                        time.sleep(0.25)
                        sock.sendall(model.body[part:part + quarter])
                    reply = b""
                    while chunk := sock.recv(65536):
                        reply += chunk
                status = int(reply.split(b" ", 2)[1])
                payload = reply.split(b"\r\n\r\n", 1)[1]
            except (OSError, ValueError, IndexError) as err:
                payload = f"{type(err).__name__}: {err}".encode()
            outcome = Outcome(started, time.monotonic(), model, status, "" if status == 200 else payload[:200].decode(errors="replace"))
            if status == 200:
                outcome.right = correct(model, payload)
            elif status == 404:
                after = self.events.churn_state(model.name)
                if absent or after[0] or after[1] != generation:
                    outcome.message = "churn"
            self.record(outcome)

    def record(self, outcome: Outcome) -> None:
        with self.outcomes_lock:
            self.outcomes.append(outcome)

    # ------------------------------------------------------------------ faults and churn

    def churn(self) -> None:
        """Unload a cold model and load it again, as the platform's LRU does, every ``--churn-every`` seconds."""
        rng = random.Random(self.args.seed + 7)
        cold = self.order[len(self.order) // 4:]
        with httpx.Client(base_url=self.server.url, timeout=120) as client:
            while not self.stop.wait(self.args.churn_every):
                model = rng.choice(cold)
                with self.events.lock:
                    self.events.generation[model.name] += 1
                    self.events.absent[model.name] = self.events.generation[model.name]
                gone = client.delete(f"/models/{model.name}")
                if gone.status_code != 200:
                    self.problem(f"churn: UnloadModel {model.name} answered {gone.status_code} {gone.text[:120]}")
                back = self.load(client, model.name, model.directory)
                with self.events.lock:
                    self.events.generation[model.name] += 1
                    self.events.absent.pop(model.name, None)
                    self.events.churned += 1
                if back != 200:
                    self.problem(f"churn: LoadModel {model.name} answered {back}")

    def load(self, client: httpx.Client, name: str, directory: Path) -> int:
        """LoadModel, retried while the platform would retry (a 503 of a worker restarting)."""
        for _ in range(30):
            response = client.post("/models", json={"model_name": name, "url": str(directory)})
            if response.status_code != 503:
                return response.status_code
            time.sleep(1)
        return 503

    def killer(self) -> None:
        """SIGKILL one framework's worker every ``--kill-every`` seconds, the frameworks in turn."""
        turn = 0
        with httpx.Client(base_url=self.server.url, timeout=30) as client:
            while not self.stop.wait(self.args.kill_every):
                framework = FRAMEWORKS[turn % len(FRAMEWORKS)]
                turn += 1
                pid = self.worker_pid(client, framework)
                if pid is None:
                    self.problem(f"killer: no {framework} worker to kill")
                    continue
                with self.events.lock:
                    self.events.kills.append((time.monotonic(), framework))
                    self.events.sigkills += 1
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def worker_pid(self, client: httpx.Client, framework: str) -> int | None:
        for model in self.by_framework[framework][:20]:
            pid = client.get(f"/models/{model.name}").json().get("workerPid") if client else None
            if pid:
                return int(pid)
        return None

    def poisoner(self) -> None:
        """Now and then, the poison model: loaded, invoked until quarantined, then unloaded."""
        with httpx.Client(base_url=self.server.url, timeout=60) as client:
            while not self.stop.wait(self.args.poison_every):
                status = self.load(client, "soak-poison", self.poison)
                if status != 200:
                    self.problem(f"poison: LoadModel answered {status}")
                    continue
                self.events.poison_loads += 1
                for _ in range(6):
                    if self.stop.is_set():
                        break
                    with self.events.lock:
                        self.events.kills.append((time.monotonic(), "sklearn"))
                        self.events.poison_invokes += 1
                    response = client.post("/models/soak-poison/invoke", content=b"1,2,3,4", headers=CSV)
                    with self.events.lock:
                        self.events.kills.append((time.monotonic(), "sklearn"))
                    described = client.get("/models/soak-poison").json()
                    if described.get("status") == "QUARANTINED":
                        self.events.quarantines += 1
                        break
                    if response.status_code not in (503, 500):
                        self.problem(f"poison: invoke answered {response.status_code} {response.text[:120]}")
                    time.sleep(1.5)
                else:
                    self.problem("poison: not quarantined after 6 deaths")
                client.delete("/models/soak-poison")

    def problem(self, text: str) -> None:
        with self.events.lock:
            self.events.problems.append(text)
        print("  !", text, flush=True)

    # ------------------------------------------------------------------ resources

    def resources(self) -> dict[str, dict[str, Any]]:
        """RSS (MB), open descriptors and threads of the front and of each framework's worker; the
        front's descriptors less its clients' connections, which are counted apart."""
        seen = {}
        with httpx.Client(base_url=self.server.url, timeout=30) as client:
            pids = {"front": self.server.pid}
            for framework in FRAMEWORKS:
                pid = self.worker_pid(client, framework)
                if pid:
                    pids[framework] = pid
        for role, pid in pids.items():
            try:
                process = psutil.Process(pid)
                seen[role] = {"rss_mb": process.memory_info().rss // 2**20, "fds": process.num_fds(), "threads": process.num_threads()}
                if role == "front":  # clients' connections come and go with the clients: counted apart, by state
                    clients = [c for c in process.net_connections("tcp") if c.laddr and c.laddr.port == self.server.port and c.raddr]
                    seen[role]["fds"] -= len(clients)
                    seen[role]["client_sockets"] = len(clients)
                    seen[role]["client_states"] = dict(Counter(c.status for c in clients))
            except psutil.Error:
                continue
        return seen

    # ------------------------------------------------------------------ the run

    def run(self) -> dict:
        with httpx.Client(base_url=self.server.url, timeout=180) as client:
            started = time.monotonic()
            for model in self.models:
                status = self.load(client, model.name, model.directory)
                if status != 200:
                    raise RuntimeError(f"LoadModel {model.name}: {status}")
            print(f"loaded {len(self.models)} models in {time.monotonic() - started:.1f}s", flush=True)
        threads = [threading.Thread(target=self.client, args=(i,), daemon=True) for i in range(self.args.clients)]
        threads += [threading.Thread(target=self.slow_client, args=(i,), daemon=True) for i in range(self.args.slow_clients)]
        for thread in threads:
            thread.start()
        time.sleep(self.args.warmup)
        first = self.resources()
        began = time.monotonic()
        faults = [threading.Thread(target=target, daemon=True) for target in (self.churn, self.killer, self.poisoner)]
        for thread in faults:
            thread.start()
        deadline = began + self.args.minutes * 60
        while time.monotonic() < deadline:
            time.sleep(min(10.0, max(0.0, deadline - time.monotonic())))
            done = [o for o in self.outcomes if o.started >= began]
            print(f"  {time.monotonic() - began:6.0f}s  {len(done):7d} requests  SIGKILLs {self.events.sigkills}"
                  f"  quarantines {self.events.quarantines}  churned {self.events.churned}", flush=True)
        self.stop.set()
        for thread in faults + threads:
            thread.join(120)
        time.sleep(self.args.settle)  # the last kill's worker back, its models reloaded
        last = self.resources()
        metrics = self.server.client.get("/metrics").text
        return self.summarize(began, first, last, metrics)

    def summarize(self, began: float, first: dict, last: dict, metrics: str) -> dict:
        outcomes = [o for o in self.outcomes if o.started >= began]
        wrong = [o for o in outcomes if o.status == 200 and not o.right]
        excused, lost = [], []
        for outcome in outcomes:
            if outcome.status == 200:
                continue
            if outcome.status == 503 and "died" in outcome.message and \
                    self.events.died_during(outcome.model.framework, outcome.started, outcome.ended):
                excused.append(outcome)
            elif outcome.status == 404 and outcome.message == "churn":
                excused.append(outcome)
            else:
                lost.append(outcome)
        minutes = defaultdict(list)
        for outcome in outcomes:
            if outcome.status == 200:
                minutes[int((outcome.started - began) // 60)].append((outcome.ended - outcome.started) * 1000)
        per_minute = {minute: {"requests": len(values), "p50_ms": float(np.percentile(values, 50)),
                               "p99_ms": float(np.percentile(values, 99))} for minute, values in sorted(minutes.items())}
        flat = {}
        for role in first:
            if role not in last:
                flat[role] = "gone"
                continue
            grew = [key for key in ("rss_mb", "fds", "threads")
                    if last[role][key] > first[role][key] * 1.05 + {"rss_mb": 4, "fds": 4, "threads": 2}[key]]
            if role == "front" and last[role].get("client_sockets", 0) > 2:  # every client has closed by now
                grew.append("client_sockets")
            flat[role] = "flat" if not grew else "grew: " + ", ".join(f"{k} {first[role][k]} -> {last[role][k]}" for k in grew)
            if role == "front" and "client_sockets" in grew:
                flat[role] += f" (left open: {last[role]['client_states']})"
        restarts = _metric_sum(metrics, "worker_restarts_total")
        quarantines = _metric_sum(metrics, "model_quarantines_total")
        return {
            "minutes": self.args.minutes, "models": len(self.models), "requests": len(outcomes),
            "answered_200": sum(o.status == 200 for o in outcomes), "wrong": len(wrong),
            "excused_503_at_a_kill": sum(o.status == 503 for o in excused), "excused_404_churn": sum(o.status == 404 for o in excused),
            "lost": len(lost), "lost_examples": [f"{o.model.name} {o.status} {o.message[:100]}" for o in lost[:8]],
            "wrong_examples": [o.model.name for o in wrong[:8]],
            "sigkills": self.events.sigkills, "poison_invokes": self.events.poison_invokes,
            "worker_restarts": restarts, "quarantines": quarantines,
            "poison_loads": self.events.poison_loads, "churned": self.events.churned,
            "problems": self.events.problems, "per_minute": per_minute,
            "resources_start": first, "resources_end": last, "resources_flat": flat,
        }


def _metric_sum(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def failures(result: dict) -> list[str]:
    """What the run got wrong; empty when every check holds."""
    found = []
    if result["wrong"]:
        found.append(f"{result['wrong']} wrong answers: {result['wrong_examples']}")
    if result["lost"]:
        found.append(f"{result['lost']} requests lost: {result['lost_examples']}")
    found += result["problems"]
    found += [f"{role} {state}" for role, state in result["resources_flat"].items() if state != "flat"]
    if result["answered_200"] == 0:
        found.append("no request answered")
    return found


def print_result(result: dict) -> None:
    print(f"\nsoak: {result['minutes']} min, {result['models']} models, {result['requests']} requests "
          f"({result['answered_200']} answered 200)")
    print(f"  lost {result['lost']}, wrong {result['wrong']}; excused: {result['excused_503_at_a_kill']} 503 at a kill, "
          f"{result['excused_404_churn']} 404 during churn")
    print(f"  SIGKILLs {result['sigkills']}, poison invokes {result['poison_invokes']}, "
          f"worker restarts {result['worker_restarts']:.0f}, quarantines {result['quarantines']:.0f} "
          f"(poison loaded {result['poison_loads']} times), churned {result['churned']}")
    print("  minute  requests   p50 ms   p99 ms")
    for minute, row in result["per_minute"].items():
        print(f"  {minute:6d}  {row['requests']:8d}  {row['p50_ms']:7.1f}  {row['p99_ms']:7.1f}")
    print("  process    rss MB (start -> end)   fds        threads    verdict  (the front's fds less its clients' sockets)")
    for role, start in result["resources_start"].items():
        end = result["resources_end"].get(role, {})
        print(f"  {role:9s}  {start['rss_mb']:5d} -> {end.get('rss_mb', '-'):>5}        "
              f"{start['fds']:3d} -> {end.get('fds', '-'):>3}  {start['threads']:3d} -> {end.get('threads', '-'):>3}  "
              f"{result['resources_flat'][role]}")


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parse.add_argument("--minutes", type=float, default=20.0)
    parse.add_argument("--models", type=int, default=200)
    parse.add_argument("--clients", type=int, default=6)
    parse.add_argument("--slow-clients", type=int, default=2)
    parse.add_argument("--kill-every", type=float, default=30.0)
    parse.add_argument("--poison-every", type=float, default=75.0)
    parse.add_argument("--churn-every", type=float, default=2.0)
    parse.add_argument("--zipf", type=float, default=1.1)
    parse.add_argument("--warmup", type=float, default=10.0)
    parse.add_argument("--settle", type=float, default=8.0)
    parse.add_argument("--seed", type=int, default=1)
    parse.add_argument("--json", type=Path, help="write the result here too")
    return parse


def soak(args: argparse.Namespace, workdir: Path) -> dict:
    started = time.monotonic()
    with warnings.catch_warnings():  # torch.jit's deprecation notices, XGBoost's note on its default format
        warnings.simplefilter("ignore")
        models = [build_model(workdir / "models", index) for index in range(args.models)]
    poison = build_poison(workdir / "models")
    print(f"built {len(models)} models and a poison in {time.monotonic() - started:.1f}s", flush=True)
    env = {"SAGEMAKER_MULTI_MODEL": "true", "MODEL_SERVER_MODELS_ROOT": str(workdir / "models"), "MODEL_SERVER_LOG_LEVEL": "WARNING"}
    server = ServerProcess(env, workdir / "server.log")
    try:
        return Soak(server, models, poison, args).run()
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        result = soak(args, Path(tmp))
    print_result(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    found = failures(result)
    for text in found:
        print("FAILED:", text)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
