"""Cold start: what a user waits for before a framework's first answer.

    .venv/bin/python benchmarks/coldstart.py [--quick] [--servers 5] [--restarts 3]
        [--frameworks sklearn,xgboost,pytorch,onnx,tensorflow,prophet] [--no-mms] [--env VAR=VALUE ...]

Models: the examples of ``models/examples`` (``sklearn-iris``, ``xgboost-binary``,
``pytorch-mlp``, ``onnx-classifier``, ``tensorflow-savedmodel``, the first Prophet customer),
trained on generated data. Measured, each on fresh servers (``harness.server.ServerProcess``;
``--env`` adds variables to every one of ours, so that the same script compares two
implementations, e.g. ``--env MODEL_SERVER_WARM_FRAMEWORKS=none`` against the default):

1. **first LoadModel per framework**: ``--servers`` fresh multi-model servers; once ``/ping``
   answers and the server's standby workers are up (``standby_workers`` in ``/metrics``; how long
   that took is printed), the first LoadModel of each framework in turn (starting its worker and importing
   the framework). p50 and max over the servers. Target: p50 <= 100 ms.
2. **restarted worker back serving** (scikit-learn, XGBoost, ONNX): in one server with the model
   loaded and answering, SIGKILL the framework's worker and time until an invocation of the
   model answers 200 again (invocations polled every 10 ms, each waiting for its answer). Each
   kill waits for the framework's standby and for the worker to outlive the supervisor's
   quick-death window, as a worker dies in service (sooner is a crash loop, restarted after a
   backoff).
   ``--restarts`` kills per framework, p50 and max. Target: <= 1 s.
3. **idle memory per framework worker**: RSS and PSS of each worker with its one model loaded
   and idle (after part 2's server settled), and of the front.
4. **start to a healthy /ping in single-model mode**: per framework a fresh server with
   ``MODEL_SERVER_MODEL_DIR`` at the model, the time from starting the process (the
   container's entry point; no container runtime here) to the first ``/ping`` 200, polled every
   10 ms. Beside it multi-model-server (``benchmarks/peer_servers.MMS``, set up as the AWS
   scikit-learn container is) to its ``/ping`` 200, then its first LoadModel of scikit-learn
   and XGBoost, which is where it imports the framework. Target: <= 2 s for every framework.

Prints one table per part; figures in ``benchmarks/charts/coldstart.json``, charts
``coldstart-first-load.png`` (first LoadModel and single-model start per framework) and
``coldstart-memory.png`` (idle worker memory per framework). The machine is shared: figures
are noisy; compare runs made one after the other.
"""

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import charts  # noqa: E402
from benchmarks.options import parse_env  # noqa: E402
from harness.server import ServerProcess  # noqa: E402
from server.front.supervisor.pool import QUICK_DEATH_SECONDS  # noqa: E402

FRAMEWORKS = ("sklearn", "xgboost", "pytorch", "onnx", "tensorflow", "prophet")
RESTARTED = ("sklearn", "xgboost", "onnx")
MB = 2**20
# The model of each framework (built by models/examples/<module>.py) and one request for it.
EXAMPLES = {
    "sklearn": ("sklearn", "sklearn-iris", b"5.1,3.5,1.4,0.2", "text/csv"),
    "xgboost": ("xgboost", "xgboost-binary", b"0.5,-1.2,3.3,0.1", "text/csv"),
    "pytorch": ("pytorch", "pytorch-mlp", b"[[0.5,-1.2,3.3,0.1]]", "application/json"),
    "onnx": ("onnx", "onnx-classifier", b"[[0.5,-1.2,3.3,0.1]]", "application/json"),
    "tensorflow": ("tensorflow", "tensorflow-savedmodel", b"[[0.5,-1.2,3.3,0.1]]", "application/json"),
    "prophet": ("prophet", None, b'{"periods": 3}', "application/json"),
}




def build(root: Path, frameworks: list[str]) -> dict[str, Path]:
    """framework -> the model directory of its example."""
    import importlib

    made = {}
    for framework in frameworks:
        module, name, _, _ = EXAMPLES[framework]
        ids = importlib.import_module(f"models.examples.{module}").build(root)
        made[framework] = root / (name or ids[0]) / "model"
    return made


def ms(seconds: float) -> float:
    return 1000 * seconds


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def invoke(client: httpx.Client, framework: str, name: str) -> int:
    _, _, body, content_type = EXAMPLES[framework]
    try:
        return client.post(f"/models/{name}/invoke", content=body, headers={"Content-Type": content_type}).status_code
    except httpx.HTTPError:
        return 0




def wait_warm(server: ServerProcess, frameworks: set[str], env: dict, timeout: float = 120) -> float | None:
    """Seconds until every framework of ``frameworks`` has a standby worker (None when standbys
    are off): the server is up when its warm workers are."""
    if env.get("MODEL_SERVER_WARM_FRAMEWORKS", "auto").lower() == "none":
        return None
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        text = server.client.get("/metrics").text
        ready = {f for f in frameworks if f'standby_workers{{framework="{f}"}} 1.0' in text}
        if ready == frameworks:
            return time.perf_counter() - started
        time.sleep(0.05)
    return time.perf_counter() - started


def first_loads(args, models: dict[str, Path], env: dict, work: Path) -> dict[str, list[float]]:
    loads: dict[str, list[float]] = {framework: [] for framework in models}
    for index in range(args.servers):
        server = ServerProcess({**env, "SAGEMAKER_MULTI_MODEL": "true"}, work / f"first-{index}.log")
        try:
            warm = wait_warm(server, set(models), env)
            if warm is not None:
                print(f"[{time.strftime('%H:%M:%S')}] server {index + 1}: standbys of {len(models)} frameworks up "
                      f"{warm:.1f} s after /ping", flush=True)
            for framework, directory in models.items():
                started = time.perf_counter()
                server.load(framework, directory)
                loads[framework].append(time.perf_counter() - started)
                if invoke(server.client, framework, framework) != 200:
                    raise RuntimeError(f"{framework}: its first invocation failed:\n{server.log()[-2000:]}")
        finally:
            server.stop()
        print(f"[{time.strftime('%H:%M:%S')}] server {index + 1}/{args.servers}: "
              + ", ".join(f"{f} {ms(v[-1]):.0f} ms" for f, v in loads.items()), flush=True)
    return loads


def restarts_and_memory(args, models: dict[str, Path], env: dict, work: Path) -> tuple[dict, dict]:
    server = ServerProcess({**env, "SAGEMAKER_MULTI_MODEL": "true"}, work / "restarts.log")
    back: dict[str, list[float]] = {}
    memory: dict[str, dict[str, float]] = {}
    try:
        for framework, directory in models.items():
            server.load(framework, directory)
            assert invoke(server.client, framework, framework) == 200
        time.sleep(2)  # idle: let the workers settle after their loads and first answers
        front = psutil.Process(server.pid).memory_full_info()
        memory["front"] = {"rss_mb": front.rss / MB, "pss_mb": front.pss / MB}
        for framework in sorted(models):  # the worker holding the model, not its framework's standby
            info = psutil.Process(server.client.get(f"/models/{framework}").json()["workerPid"]).memory_full_info()
            memory[framework] = {"rss_mb": info.rss / MB, "pss_mb": info.pss / MB, "uss_mb": info.uss / MB}
        settled = time.perf_counter()
        for framework in [f for f in RESTARTED if f in models]:
            back[framework] = []
            for _ in range(args.restarts):
                # As a worker dies in service: its standby up, and it lived past the supervisor's
                # quick-death window (a death sooner is a crash loop, restarted after a backoff).
                wait_warm(server, {framework}, env)
                time.sleep(max(0.0, QUICK_DEATH_SECONDS + 0.5 - (time.perf_counter() - settled)))
                victim = psutil.Process(server.client.get(f"/models/{framework}").json()["workerPid"])  # not its standby
                victim.send_signal(signal.SIGKILL)
                killed = time.perf_counter()
                deadline = killed + 60
                while invoke(server.client, framework, framework) != 200:
                    if time.perf_counter() > deadline:
                        raise RuntimeError(f"{framework}: not back within 60 s:\n{server.log()[-2000:]}")
                    time.sleep(0.01)
                back[framework].append(time.perf_counter() - killed)
                settled = time.perf_counter()
            print(f"[{time.strftime('%H:%M:%S')}] {framework} back after SIGKILL: "
                  + ", ".join(f"{ms(v):.0f} ms" for v in back[framework]), flush=True)
    finally:
        server.stop()
    return back, memory


def single_model_starts(models: dict[str, Path], env: dict, work: Path) -> dict[str, float]:
    starts = {}
    for framework, directory in models.items():
        started = time.perf_counter()
        server = ServerProcess({**env, "SAGEMAKER_MULTI_MODEL": "false", "MODEL_SERVER_MODEL_DIR": directory},
                               work / f"single-{framework}.log", wait_ready=False)
        try:
            deadline = started + 120
            while True:
                try:
                    if server.client.get("/ping").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"{framework}: /ping not 200 within 120 s:\n{server.log()[-2000:]}")
                time.sleep(0.01)
            starts[framework] = time.perf_counter() - started
        finally:
            server.stop()
    print(f"[{time.strftime('%H:%M:%S')}] single-model start to /ping: "
          + ", ".join(f"{f} {ms(v):.0f} ms" for f, v in starts.items()), flush=True)
    return starts


def mms_start(models: dict[str, Path], work: Path) -> dict[str, float]:
    """multi-model-server: start to /ping, then the first LoadModel of scikit-learn and XGBoost."""
    from benchmarks import peer_venvs
    from benchmarks.peer_models import Model
    from benchmarks.peer_servers import MMS

    server = MMS(work / "mms", 1, peer_venvs.ensure("mms"))
    figures = {}
    try:
        figures["start"] = timed(server.start)
        for framework, kind in (("sklearn", "sklearn"), ("xgboost", "xgboost")):
            if framework not in models:
                continue
            directory = models[framework]
            (source,) = [path for path in directory.iterdir() if path.is_file()]
            model = Model(framework, kind, directory, source)
            started = time.perf_counter()
            server.load(model)
            figures[f"first LoadModel {framework}"] = time.perf_counter() - started
    finally:
        server.stop()
    print(f"[{time.strftime('%H:%M:%S')}] multi-model-server: " + ", ".join(f"{k} {ms(v):.0f} ms" for k, v in figures.items()),
          flush=True)
    return figures


def draw(loads: dict, singles: dict, mms: dict, memory: dict, suffix: str, note: str, servers: int) -> None:
    first = {f: {"first LoadModel p50": ms(statistics.median(loads[f])), "single-model start to /ping": ms(singles[f])}
             for f in loads}
    if mms:
        first["multi-model-server\n(start + sklearn load)"] = {
            "single-model start to /ping": ms(mms["start"] + mms.get("first LoadModel sklearn", 0))}
    title = f"first LoadModel (p50 of {servers} fresh servers) and single-model start"
    drawn = charts.bars("coldstart-first-load" + suffix, title + suffix.replace("-", " "), first, "ms",
                        targets={"target: first LoadModel 100 ms": 100, "target: start 2 s": 2000}, log_y=True, note=note)
    print(f"\ncharts: {drawn}")
    sizes = {name: {"RSS": m["rss_mb"], "PSS": m["pss_mb"]} for name, m in memory.items()}
    drawn = charts.bars("coldstart-memory" + suffix, "idle memory per framework worker, one model loaded" + suffix.replace("-", " "),
                        sizes, "MB", note=note)
    print(f"charts: {drawn}")


def table(head: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a short run: 2 servers, 2 restarts per framework")
    parser.add_argument("--servers", type=int, default=5, help="fresh servers for the first LoadModel")
    parser.add_argument("--restarts", type=int, default=3, help="SIGKILLs per framework")
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    parser.add_argument("--no-mms", action="store_true")
    parser.add_argument("--env", action="append", default=[], metavar="VAR=VALUE", help="for every one of our servers")
    parser.add_argument("--label", default="", help="names this run in the JSON and charts (e.g. before, after)")
    parser.add_argument("--json", type=Path, default=charts.CHARTS / "coldstart.json")
    args = parser.parse_args()
    if args.quick:
        args.servers, args.restarts = 2, 2
    frameworks = args.frameworks.split(",")
    unknown = set(frameworks) - set(FRAMEWORKS)
    if unknown:
        raise SystemExit(f"unknown frameworks {sorted(unknown)}; choose from {', '.join(FRAMEWORKS)}")
    extra = parse_env(args.env)
    print(f"[{time.strftime('%H:%M:%S')}] load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores "
          f"(a shared machine: figures are noisy); our servers' extra variables: {extra or 'none'}", flush=True)

    with tempfile.TemporaryDirectory(prefix="coldstart-") as tmp:
        work = Path(tmp)
        models = build(work / "models", frameworks)
        env = {"MODEL_SERVER_MODELS_ROOT": work / "models", "MODEL_SERVER_LOG_LEVEL": "WARNING", **extra}
        loads = first_loads(args, models, env, work)
        back, memory = restarts_and_memory(args, models, env, work)
        singles = single_model_starts(models, env, work)
        mms = {} if args.no_mms else mms_start(models, work)

    print(f"\n== first LoadModel of each framework once /ping answers, over {args.servers} fresh servers "
          "(target p50 <= 100 ms); single-model start to /ping (target <= 2 s)")
    rows = []
    for framework in frameworks:
        values = loads[framework]
        rows.append([framework, f"{ms(statistics.median(values)):.0f}", f"{ms(max(values)):.0f}", f"{ms(singles[framework]):.0f}"])
    print(table(["framework", "first LoadModel p50 ms", "max ms", "single-model start to /ping ms"], rows))
    if mms:
        print("multi-model-server (as the scikit-learn container): "
              + ", ".join(f"{name} {ms(value):.0f} ms" for name, value in mms.items()))

    if back:
        print(f"\n== a SIGKILLed worker back serving (time to the first 200), {args.restarts} kills each (target <= 1 s)")
        print(table(["framework", "p50 ms", "max ms"],
                    [[f, f"{ms(statistics.median(v)):.0f}", f"{ms(max(v)):.0f}"] for f, v in back.items()]))

    print("\n== idle memory, one model loaded in each worker (MB)")
    print(table(["process", "RSS", "PSS", "USS"], [[name, f"{m['rss_mb']:.0f}", f"{m['pss_mb']:.0f}",
                                                   f"{m['uss_mb']:.0f}" if "uss_mb" in m else "–"] for name, m in memory.items()]))

    suffix = f"-{args.label}" if args.label else ""
    draw(loads, singles, mms, memory, suffix, f"{os.cpu_count()} shared cores; extra variables: {extra or 'none'}",
         args.servers)
    target = args.json if not args.label else args.json.with_name(f"{args.json.stem}{suffix}.json")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items() if k != "json"}, "env": extra,
                                  "first_load_s": loads, "restart_back_s": back, "idle_memory_mb": memory,
                                  "single_model_start_s": singles, "mms_s": mms}, indent=1) + "\n")
    print(f"figures: {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}")


if __name__ == "__main__":
    main()
