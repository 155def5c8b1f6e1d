"""Real networks at the limit: each framework's own speed, this server's, TorchServe's.

    .venv/bin/python benchmarks/networks.py [--quick] [--seconds 5] [--rounds 2] [--clients 1,8,32]
        [--batches 1,8,32] [--networks resnet18,encoder] [--frameworks pytorch,onnx,tensorflow]
        [--threads N] [--peer-workers 1] [--no-torchserve] [--env VAR=VALUE ...]

The networks of ``models/networks.py`` (a ResNet-18 on one 3x224x224 image, a BERT-tiny-sized
encoder on 128 token ids), each as TorchScript, ONNX and a TF SavedModel, built in a child
process from generated weights. One request is one input as NPY; answers are asked as NPY. In
one run, one after the other so that they never share the cores:

1. **in process**: a fresh process per (network, framework) with a worker's environment and
   threads (``--threads``, default the server's ``MODEL_SERVER_INTRA_OP_THREADS``) loads the
   artifact through the handler's ``load`` and times the framework's own call (``model(tensor)``,
   ``session.run``, the serving signature) on batches of ``--batches`` inputs: rows/s and the
   p50 of one call. That is the limit of these cores for that model. It runs twice, before the
   servers and after them, and the best of the two counts (a busy neighbour during one pass
   would otherwise make the server look faster than its framework).
2. **this server**: ONE multi-model server (``harness.server.ServerProcess``) holds every
   artifact twice, batched (the server's default) and with ``batching.json``
   ``{"enabled": false}``; ``wrk`` drives each at ``--clients`` keep-alive clients
   (``benchmarks/wrk.py``), each point for ``--seconds`` or, for a slow network, long enough
   for about 4 answers per client (at most ``--max-seconds``; ``Pacing``). The mean requests per predict call of each run is read from the
   server's ``invocation_batch_size`` histogram in ``/metrics`` (before and after the run).
3. **TorchServe** (``benchmarks/peer_servers.py``, its venv from ``peer_venvs``) on the
   TorchScript files, with an NPY handler, registered twice: unbatched, and with its own
   batching (``batch_size`` the largest of ``--clients``, ``max_batch_delay`` 10 ms);
   ``--peer-workers`` processes per model of one math thread each (default 1: the same
   compute as our one worker of one math thread).

Printed per network and framework: the in-process table, then per client count and mode req/s,
p50, p99 and the mean batch; then the target ratios: at the most clients, server req/s over the
in-process rate at the batch size the server reached (interpolated between the measured batch
sizes on a log scale; target >= 90%); p50 at 1 client minus the in-process batch-1 call (target
<= 1 ms); ours over TorchServe, same mode (target >= 2x). Charts: ``networks-throughput.png``
(req/s against clients, the in-process limit dashed) and ``networks-p99.png`` in
``benchmarks/charts/`` with their JSON; every figure in ``benchmarks/charts/networks.json``.
The machine is shared: compare the figures of one run, not across runs.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import charts, peer_venvs, wrk  # noqa: E402
from benchmarks.options import parse_env  # noqa: E402
from benchmarks.peer_models import Model  # noqa: E402
from benchmarks.peer_servers import TORCHSERVE_NPY_HANDLER, TorchServe  # noqa: E402
from harness.server import ServerProcess  # noqa: E402
from models.networks import FRAMEWORKS, NETWORKS, request  # noqa: E402

NPY = "application/x-npy"
MODES = ("unbatched", "batched")
TORCHSERVE_DELAY_MS = 10


def npy(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()




# ---------------------------------------------------------------------------------- in process


def _call(framework: str, model, artifact: Path):
    """The framework's own call on one batch, as the handler's ``load`` gave the model."""
    if framework == "pytorch":
        import torch

        def run(batch):
            with torch.inference_mode():
                return model(torch.from_numpy(batch))

        return run
    if framework == "onnx":
        name = model.get_inputs()[0].name
        return lambda batch: model.run(None, {name: batch})
    import tensorflow as tf

    signature = tf.saved_model.load(str(artifact)).signatures["serving_default"]
    name = next(iter(signature.structured_input_signature[1]))
    return lambda batch: signature(**{name: tf.constant(batch)})


def in_process_child(framework: str, directory: Path, network: str, threads: int, batches: list[int],
                     seconds: float) -> None:
    """Runs in its own process: print one JSON line of {batch: {rows_per_s, call_p50_ms}}."""
    import handlers

    handler = handlers.get(framework)
    if handler.setup is not None:
        handler.setup(threads)
    artifact = handler.find(directory)
    run = _call(framework, None if framework == "tensorflow" else handler.load(artifact), artifact)
    figures = {}
    for size in batches:
        batch = request(network, size)
        for _ in range(2):  # warm up: the first calls profile, specialise and allocate
            run(batch)
        times, stop = [], time.perf_counter() + seconds
        while time.perf_counter() < stop or len(times) < 2:
            started = time.perf_counter()
            run(batch)
            times.append(time.perf_counter() - started)
        figures[size] = {"rows_per_s": size * len(times) / sum(times), "call_p50_ms": 1000 * statistics.median(times),
                         "calls": len(times)}
    print(json.dumps(figures))


def in_process(models: Path, network: str, framework: str, threads: int, batches: list[int], seconds: float) -> dict:
    from server.config import Settings
    from server.shared.environment import worker_environment

    env = worker_environment(threads, Settings.from_env().fpmath_mode)
    command = [sys.executable, str(Path(__file__).resolve()), "--in-process-child", framework,
               str(models / f"{network}-{framework}" / "model"), network, "--threads", str(threads),
               "--batches", ",".join(map(str, batches)), "--in-process-seconds", str(seconds)]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"in-process {network}-{framework} failed:\n{done.stderr[-2000:]}")
    return {int(size): figure for size, figure in json.loads(lines[-1]).items()}


def best(passes: list[dict]) -> dict:
    """The limit: per (network, framework) and batch, the best of the in-process passes (one runs
    before the servers, one after, so that a neighbour busy during one of them lowers neither)."""
    limits: dict = {}
    for key in passes[0]:
        limits[key] = {}
        for size in passes[0][key]:
            figures = [one[key][size] for one in passes]
            limits[key][size] = {"rows_per_s": max(f["rows_per_s"] for f in figures),
                                 "call_p50_ms": min(f["call_p50_ms"] for f in figures),
                                 "passes": figures}
    return limits


def rate_at(figures: dict, batch: float) -> float:
    """In-process rows/s at ``batch`` rows per call: linear in log2(batch) between measured sizes."""
    sizes = sorted(figures)
    if batch <= sizes[0]:
        return figures[sizes[0]]["rows_per_s"]
    if batch >= sizes[-1]:
        return figures[sizes[-1]]["rows_per_s"]
    for low, high in zip(sizes, sizes[1:]):
        if low <= batch <= high:
            share = (np.log2(batch) - np.log2(low)) / (np.log2(high) - np.log2(low))
            return float(figures[low]["rows_per_s"] + share * (figures[high]["rows_per_s"] - figures[low]["rows_per_s"]))
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------------------- servers


METRIC = re.compile(r'^invocation_batch_size_(sum|count)\{framework="(\w+)"\} (\S+)$', re.M)


def batch_totals(server: ServerProcess) -> dict[str, tuple[float, float]]:
    """framework -> (requests, predict calls) so far, from ``/metrics``."""
    found: dict[str, dict[str, float]] = {}
    for kind, framework, value in METRIC.findall(server.client.get("/metrics").text):
        found.setdefault(framework, {})[kind] = float(value)
    return {framework: (values.get("sum", 0.0), values.get("count", 0.0)) for framework, values in found.items()}


ANSWERED = re.compile(r'^invocations_total\{[^}]*\} (\S+)$', re.M)


def answered(server: ServerProcess) -> float:
    """Invocations answered so far, every framework and status, from ``/metrics``."""
    return sum(float(value) for value in ANSWERED.findall(server.client.get("/metrics").text))


def mean_batch(before: dict, after: dict, framework: str) -> float | None:
    requests = after.get(framework, (0, 0))[0] - before.get(framework, (0, 0))[0]
    calls = after.get(framework, (0, 0))[1] - before.get(framework, (0, 0))[1]
    return requests / calls if calls else None


class Pacing:
    """How long to drive one point, and to let the server drain after it, from the in-process
    batch-1 rate: a ResNet-18 on one math thread answers a few images a second, so 32 clients
    need some seconds for each to see even a few answers, and the requests in flight when wrk
    stops (it drops them) are still computed before the next point may start."""

    def __init__(self, args, limits: dict):
        self.seconds, self.most, self.limits = args.seconds, args.max_seconds, limits

    def rate(self, network: str, framework: str) -> float:
        figures = self.limits[(network, framework)]
        return figures[min(figures)]["rows_per_s"]

    def duration(self, network: str, framework: str, clients: int) -> float:
        return min(self.most, max(self.seconds, 4 * clients / self.rate(network, framework)))

    def drain(self, network: str, framework: str, clients: int, server: ServerProcess | None = None) -> None:
        """Until the requests wrk left in flight are answered: with our server, until its count of
        answered invocations stops moving for twice a batch of them; else twice their share of time."""
        quiet = max(0.5, 2 * clients / self.rate(network, framework))  # longer than a batch of them takes
        if server is None:
            time.sleep(min(30.0, 2 * clients / self.rate(network, framework)))
            return
        deadline, last = time.monotonic() + 60, None
        while time.monotonic() < deadline:
            done = answered(server)
            if done == last:
                return
            last = done
            time.sleep(quiet)

    def timeout(self, network: str, framework: str, clients: int) -> float:
        return max(10.0, 4 * clients / self.rate(network, framework))


def warm(url: str, body: bytes, clients: int, headers: dict) -> None:
    """``clients`` requests at once, every answer awaited: the batch sizes the runs will see,
    specialised once, untimed."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    with httpx.Client(timeout=600) as client, ThreadPoolExecutor(clients) as pool:
        statuses = list(pool.map(lambda _: client.post(url, content=body, headers=headers).status_code, range(clients)))
    if set(statuses) != {200}:
        raise RuntimeError(f"warm-up of {url}: statuses {sorted(set(statuses))}")


def layout(models: Path, built: list[str]) -> None:
    """``<id>-batched`` and ``<id>-unbatched`` beside each built ``<id>`` (hard links: no copy)."""
    for name in built:
        for mode in MODES:
            target = models / f"{name}-{mode}" / "model"
            shutil.copytree(models / name / "model", target, copy_function=os.link)
            if mode == "unbatched":
                (target / "batching.json").write_text(json.dumps({"enabled": False}))


def check_answer(response, network: str, what: str) -> None:
    import io

    if response.status_code != 200:
        raise RuntimeError(f"{what}: {response.status_code} {response.text[:300]}")
    rows = np.load(io.BytesIO(response.content)).shape[0]
    if rows != 1:
        raise RuntimeError(f"{what}: {rows} rows answered to one")


def drive_ours(args, models: Path, pairs: list[tuple[str, str]], bodies: dict, work: Path, pacing: Pacing) -> dict:
    env = {"SAGEMAKER_MULTI_MODEL": "true", "MODEL_SERVER_MODELS_ROOT": models, "MODEL_SERVER_LOG_LEVEL": "WARNING",
           **parse_env(args.env)}
    server = ServerProcess(env, work / "server.log")
    results: dict = {}
    try:
        for network, framework in pairs:
            for mode in MODES:
                name = f"{network}-{framework}-{mode}"
                server.load(name, models / name / "model")
                for _ in range(3):
                    response = server.client.post(f"/models/{name}/invoke", content=bodies[network],
                                                  headers={"Content-Type": NPY, "Accept": NPY})
                    check_answer(response, network, f"ours {name}")
                if mode == "batched":
                    warm(f"{server.url}/models/{name}/invoke", bodies[network], max(args.clients),
                         {"Content-Type": NPY, "Accept": NPY})
        for round_number in range(args.rounds):
            for network, framework in pairs:
                for clients in args.clients:
                    for mode in MODES:
                        name = f"{network}-{framework}-{mode}"
                        before = batch_totals(server)
                        figure = wrk.run(server.port, [f"/models/{name}/invoke"], bodies[network], NPY, clients,
                                         pacing.duration(network, framework, clients), accept=NPY,
                                         timeout=pacing.timeout(network, framework, clients))
                        pacing.drain(network, framework, clients, server)
                        figure["mean_batch"] = mean_batch(before, batch_totals(server), framework)
                        results.setdefault((network, framework, mode, clients), []).append(figure)
            print(f"[{time.strftime('%H:%M:%S')}] ours: round {round_number + 1}/{args.rounds} done", flush=True)
    finally:
        server.stop()
    return results


def drive_torchserve(args, models: Path, networks: list[str], bodies: dict, work: Path, pacing: Pacing) -> dict:
    server = TorchServe(work / "torchserve", args.peer_workers, peer_venvs.ensure("torchserve"),
                        handler=TORCHSERVE_NPY_HANDLER, max_batch_delay_ms=TORCHSERVE_DELAY_MS)
    entries = {}
    for network in networks:
        source = models / f"{network}-pytorch" / "model" / "model.pt"
        for mode in MODES:
            name = f"{network}-{mode}"
            entries[(network, mode)] = Model(name, "torch", models / f"{network}-pytorch-{mode}" / "model", source)
    results: dict = {}
    try:
        server.prepare(list(entries.values()))
        server.start()
        for (network, mode), model in entries.items():
            server.load(model, batch_size=max(args.clients) if mode == "batched" else 1)
            for _ in range(3):
                response = server.client.post(server.url(server.path(model.name)), content=bodies[network],
                                              headers={"Content-Type": NPY})
                check_answer(response, network, f"torchserve {model.name}")
            if mode == "batched":
                warm(server.url(server.path(model.name)), bodies[network], max(args.clients), {"Content-Type": NPY})
        logs = [server.workdir / "server.log", *sorted((server.workdir / "logs").glob("*.log"))]
        threads = {line.rsplit("math threads:", 1)[1].strip() for path in logs if path.exists()
                   for line in path.read_text(errors="replace").splitlines() if "math threads:" in line}
        print(f"[{time.strftime('%H:%M:%S')}] torchserve workers' math threads: {', '.join(sorted(threads)) or '?'}",
              flush=True)
        for round_number in range(args.rounds):
            for network in networks:
                for clients in args.clients:
                    for mode in MODES:
                        figure = wrk.run(server.port, [server.path(f"{network}-{mode}")], bodies[network], NPY, clients,
                                         pacing.duration(network, "pytorch", clients), accept=NPY,
                                         timeout=pacing.timeout(network, "pytorch", clients))
                        pacing.drain(network, "pytorch", clients)
                        results.setdefault((network, mode, clients), []).append(figure)
            print(f"[{time.strftime('%H:%M:%S')}] torchserve: round {round_number + 1}/{args.rounds} done", flush=True)
    finally:
        server.stop()
    return results


# ---------------------------------------------------------------------------------- report


def median(figures: list[dict]) -> dict:
    merged = {}
    for key in ("requests_per_s", "p50_ms", "p99_ms", "errors", "mean_batch"):
        values = [figure[key] for figure in figures if figure.get(key) is not None]
        merged[key] = statistics.median(values) if values else None
    return merged


def cell(figure: dict | None) -> str:
    if figure is None:
        return "–"
    batch = f", batch {figure['mean_batch']:.1f}" if figure.get("mean_batch") else ""
    errors = f", {figure['errors']:.0f} errors" if figure.get("errors") else ""
    return f"{figure['requests_per_s']:,.1f} ({figure['p50_ms']:.1f} / {figure['p99_ms']:.1f}{batch}{errors})"


def ratio(value: float | None, percent: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:.0%}" if percent else f"{value:.2f}x"


def report(args, pairs, limits, ours, peer) -> dict:
    most, fewest = max(args.clients), min(args.clients)
    print(f"\n== in process: rows/s (p50 of one call, ms); {args.threads} math thread(s)")
    head = ["network", "framework"] + [f"batch {size}" for size in args.batches]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for network, framework in pairs:
        figures = limits[(network, framework)]
        print(f"| {network} | {framework} | " + " | ".join(
            f"{figures[size]['rows_per_s']:,.1f} ({figures[size]['call_p50_ms']:.1f})" for size in args.batches) + " |")

    print(f"\n== servers: req/s (p50 / p99 ms, mean requests per predict call); NPY in and out, {args.seconds:g} to {args.max_seconds:g} s per "
          f"point, median of {args.rounds} round(s)")
    head = ["network", "framework", "clients", "ours unbatched", "ours batched", "torchserve unbatched",
            "torchserve batched"]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for network, framework in pairs:
        for clients in args.clients:
            cells = [cell(ours.get((network, framework, mode, clients))) for mode in MODES]
            cells += [cell(peer.get((network, mode, clients))) if framework == "pytorch" else "–" for mode in MODES]
            print(f"| {network} | {framework} | {clients} | " + " | ".join(cells) + " |")

    ratios = {}
    print(f"\n== the target ratios (targets: >= 90% of in process at {most} clients; <= 1 ms over in process at "
          f"{fewest} client; >= 2x TorchServe)")
    head = ["network", "framework", "mode", f"{most} clients: server / in process at its batch",
            f"{fewest} client: p50 - in-process batch-1 call (ms)", f"ours / torchserve at {fewest}",
            f"ours / torchserve at {most}"]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for network, framework in pairs:
        for mode in MODES:
            top, one = ours.get((network, framework, mode, most)), ours.get((network, framework, mode, fewest))
            batch = (top or {}).get("mean_batch") or 1.0
            limit = rate_at(limits[(network, framework)], batch)
            share = top["requests_per_s"] / limit if top else None
            extra = one["p50_ms"] - limits[(network, framework)][min(args.batches)]["call_p50_ms"] if one else None
            versus = {}
            for clients in (fewest, most):
                theirs = peer.get((network, mode, clients)) if framework == "pytorch" else None
                mine = ours.get((network, framework, mode, clients))
                versus[clients] = mine["requests_per_s"] / theirs["requests_per_s"] if mine and theirs else None
            ratios[f"{network}|{framework}|{mode}"] = {"server_over_in_process": share, "batch": batch,
                                                     "in_process_at_batch": limit, "p50_over_in_process_ms": extra,
                                                     "over_torchserve": versus}
            print(f"| {network} | {framework} | {mode} | {ratio(share, percent=True)} (batch {batch:.1f}, "
                  f"{limit:,.1f} rows/s in process) | {'–' if extra is None else f'{extra:+.2f}'} | "
                  f"{ratio(versus[fewest])} | {ratio(versus[most])} |")
    return ratios


def draw(args, pairs, limits, ours, peer) -> None:
    throughput, p99, references = {}, {}, {}
    for network, framework in pairs:
        panel = f"{network} · {framework}"
        for mode in MODES:
            throughput.setdefault(panel, {})[f"ours {mode}"] = [
                (c, ours[(network, framework, mode, c)]["requests_per_s"]) for c in args.clients
                if (network, framework, mode, c) in ours]
            p99.setdefault(panel, {})[f"ours {mode}"] = [
                (c, ours[(network, framework, mode, c)]["p99_ms"]) for c in args.clients if (network, framework, mode, c) in ours]
            if framework == "pytorch" and peer:
                throughput[panel][f"torchserve {mode}"] = [(c, peer[(network, mode, c)]["requests_per_s"]) for c in args.clients
                                                           if (network, mode, c) in peer]
                p99[panel][f"torchserve {mode}"] = [(c, peer[(network, mode, c)]["p99_ms"]) for c in args.clients
                                                    if (network, mode, c) in peer]
        figures = limits[(network, framework)]
        references[panel] = {f"in process, batch {size}": figures[size]["rows_per_s"] for size in (min(args.batches), max(args.batches))}
    note = f"{os.cpu_count()} shared cores, {args.threads} math thread(s), {args.seconds:g}-{args.max_seconds:g} s per point; NPY in and out"
    print(f"\ncharts: {charts.lines('networks-throughput', 'req/s against clients', throughput, 'clients', 'req/s', references, note=note)}")
    print(f"charts: {charts.lines('networks-p99', 'p99 latency against clients', p99, 'clients', 'p99 ms', log_y=True, note=note)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a short run: 3 to 20 s per point, 1 round, 1.5 s in process")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds of each wrk run, at least")
    parser.add_argument("--max-seconds", type=float, default=40.0,
                        help="at most, for a slow network (each point runs long enough for ~4 answers per client)")
    parser.add_argument("--in-process-seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--networks", default=",".join(NETWORKS))
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    parser.add_argument("--threads", type=int, default=None, help="in-process math threads (default: the server's)")
    parser.add_argument("--peer-workers", type=int, default=1, help="TorchServe processes per model")
    parser.add_argument("--no-torchserve", action="store_true")
    parser.add_argument("--env", action="append", default=[], metavar="VAR=VALUE", help="for our server")
    parser.add_argument("--json", type=Path, default=charts.CHARTS / "networks.json")
    parser.add_argument("--in-process-child", nargs=3, metavar=("FRAMEWORK", "DIR", "NETWORK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.batches = [int(b) for b in args.batches.split(",")]
    if args.in_process_child:
        framework, directory, network = args.in_process_child
        in_process_child(framework, Path(directory), network, args.threads or 1, args.batches, args.in_process_seconds)
        return
    if args.quick:
        args.seconds, args.max_seconds, args.rounds, args.in_process_seconds = 3.0, 20.0, 1, 1.5
    if not wrk.available():
        raise SystemExit(wrk.INSTALL_HINT)
    if args.threads is None:
        from server.config import Settings

        args.threads = Settings.from_env({**os.environ, **parse_env(args.env)}).intra_op_threads
    args.clients = [int(c) for c in args.clients.split(",")]
    networks, frameworks = args.networks.split(","), args.frameworks.split(",")
    unknown = (set(networks) - set(NETWORKS)) | (set(frameworks) - set(FRAMEWORKS))
    if unknown:
        raise SystemExit(f"unknown {sorted(unknown)}; networks: {', '.join(NETWORKS)}; frameworks: {', '.join(FRAMEWORKS)}")
    pairs = [(network, framework) for network in networks for framework in frameworks]
    print(f"[{time.strftime('%H:%M:%S')}] load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores "
          "(a shared machine: compare figures inside one run)", flush=True)

    with tempfile.TemporaryDirectory(prefix="networks-") as tmp:
        work, models = Path(tmp), Path(tmp) / "models"
        started = time.monotonic()
        built = subprocess.run([sys.executable, "-m", "models.networks", "--out", str(models), "--only", ",".join(networks),
                                "--frameworks", ",".join(frameworks)], cwd=ROOT, capture_output=True, text=True)
        if built.returncode != 0:
            raise SystemExit(f"building the networks failed:\n{built.stderr[-3000:]}")
        layout(models, built.stdout.split())
        print(f"[{time.strftime('%H:%M:%S')}] built {len(pairs)} artifacts in {time.monotonic() - started:.0f}s", flush=True)
        bodies = {network: npy(request(network)) for network in networks}

        passes: list[dict] = []

        def measure_in_process(when: str) -> None:
            passes.append({})
            for network, framework in pairs:
                passes[-1][(network, framework)] = in_process(models, network, framework, args.threads, args.batches,
                                                              args.in_process_seconds)
                print(f"[{time.strftime('%H:%M:%S')}] in process {network}-{framework} ({when}): "
                      f"{json.dumps(passes[-1][(network, framework)])}", flush=True)

        measure_in_process("before the servers")
        pacing = Pacing(args, passes[0])
        ours = {key: median(value) for key, value in drive_ours(args, models, pairs, bodies, work, pacing).items()}
        peer = {}
        if "pytorch" in frameworks and not args.no_torchserve:
            try:
                peer = {key: median(value) for key, value in drive_torchserve(args, models, networks, bodies, work, pacing).items()}
            except Exception as error:  # reported and left out; our figures stand alone
                print(f"torchserve left out: {error}", flush=True)
        measure_in_process("after the servers")
        limits = best(passes)

    ratios = report(args, pairs, limits, ours, peer)
    draw(args, pairs, limits, ours, peer)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "args": {key: str(value) for key, value in vars(args).items() if key != "json"}, "load_average": os.getloadavg()[0],
        "in_process": {f"{n}|{f}": figures for (n, f), figures in limits.items()},
        "ours": {"|".join(map(str, key)): value for key, value in ours.items()},
        "torchserve": {"|".join(map(str, key)): value for key, value in peer.items()}, "ratios": ratios}, indent=1) + "\n")
    print(f"figures: {args.json.relative_to(ROOT) if args.json.is_relative_to(ROOT) else args.json}")


if __name__ == "__main__":
    main()
