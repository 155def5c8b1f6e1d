"""Dynamic batching (issue 13, point 2): small networks at 32 clients, batched against unbatched.

    .venv/bin/python benchmarks/batching.py [--seconds 5] [--rounds 3] [--threads 4] [--clients 1,32]
        [--networks pytorch,onnx,gru] [--hidden 256]

Networks, each written twice: as is (batched: the server's default) and with ``batching.json``
``{"enabled": false}``. ONE multi-model server holds them all, so both modes share the process,
the threads and the machine; rounds interleave the modes and the ratios are taken inside each
round. ``wrk`` (Debian's package) drives it, one request per row:

- ``pytorch`` and ``onnx``: one MLP (64 -> hidden -> hidden -> 10, ReLU) as TorchScript and as
  ONNX (the same weights, written as MatMul/Add/Relu nodes); a request is one row of 64 floats.
- ``gru``: a sequence classifier (a GRU of 64 units over 32 steps of 16 features, then a linear
  layer to 10 classes) as TorchScript; a request is one sequence, 32 x 16 floats.

The MLP's one-row predict is cheap next to a request's HTTP cost (and past 1024 units it is
bound by arithmetic, which batching cannot save), so merging saves little there; a recurrent
network spends a one-row call on per-step overhead that a batch shares, which is where batching
pays. Printed per network and client count: req/s, p50 and p99 of each mode, the
batched/unbatched ratio of req/s and of p50 (median over rounds). Targets: >= 3x req/s at 32
clients, p50 at 1 client unchanged (ratio ~1.0). ``--threads`` is MODEL_SERVER_WORKER_THREADS.

``--in-process 4,16,32`` measures the worker's side alone instead (decode, predict, encode from
that many threads in this process, no front): what batching can give once the front's cost is
out of the way. Run it with ``OMP_NUM_THREADS`` set to the cores, as the workers get it.
"""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import wrk  # noqa: E402
from harness.server import ServerProcess  # noqa: E402
from server.shared.environment import fpmath_mode  # noqa: E402

LAYERS = [64, 256, 256, 10]
STEPS, FEATURES, UNITS, CLASSES = 32, 16, 64, 10  # the GRU's input (steps x features), state and classes
FRAMEWORKS = {"pytorch": "pytorch", "onnx": "onnx", "gru": "pytorch"}  # network -> the framework serving it
NETWORKS = tuple(FRAMEWORKS)
MODES = ("unbatched", "batched")


def weights(seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        (rng.normal(scale=1 / np.sqrt(n_in), size=(n_in, n_out)).astype(np.float32), rng.normal(size=n_out).astype(np.float32))
        for n_in, n_out in zip(LAYERS, LAYERS[1:])
    ]


def write_torchscript(target: Path, layers) -> None:
    import torch

    modules = []
    for index, (weight, bias) in enumerate(layers):
        linear = torch.nn.Linear(*weight.shape)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(weight.T.copy()))
            linear.bias.copy_(torch.from_numpy(bias))
        modules.append(linear)
        if index < len(layers) - 1:
            modules.append(torch.nn.ReLU())
    torch.jit.script(torch.nn.Sequential(*modules).eval()).save(str(target / "model.pt"))


def write_onnx(target: Path, layers) -> None:
    from onnx import TensorProto, helper, numpy_helper

    nodes, initializers, current = [], [], "input"
    for index, (weight, bias) in enumerate(layers):
        initializers += [numpy_helper.from_array(weight, f"w{index}"), numpy_helper.from_array(bias, f"b{index}")]
        nodes += [
            helper.make_node("MatMul", [current, f"w{index}"], [f"m{index}"]),
            helper.make_node("Add", [f"m{index}", f"b{index}"], [f"a{index}"]),
        ]
        current = f"a{index}"
        if index < len(layers) - 1:
            nodes.append(helper.make_node("Relu", [current], [f"r{index}"]))
            current = f"r{index}"
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", LAYERS[0]])],
        [helper.make_tensor_value_info(current, TensorProto.FLOAT, ["N", LAYERS[-1]])], initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    (target / "model.onnx").write_bytes(model.SerializeToString())


def write_gru(target: Path) -> None:
    import torch

    class SequenceClassifier(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = torch.nn.GRU(FEATURES, UNITS, batch_first=True)
            self.head = torch.nn.Linear(UNITS, CLASSES)

        def forward(self, x):
            _, state = self.gru(x)
            return self.head(state[-1])

    torch.manual_seed(0)
    torch.jit.script(SequenceClassifier().eval()).save(str(target / "model.pt"))


def body(network: str) -> bytes:
    """One request's JSON: a row of the MLP's inputs, or one sequence of the GRU's."""
    rng = np.random.default_rng(1)
    shape = (1, STEPS, FEATURES) if network == "gru" else (1, LAYERS[0])
    return json.dumps(rng.normal(size=shape).round(4).tolist()).encode()


def build(root: Path, networks: list[str]) -> None:
    layers = weights()
    writers = {"pytorch": lambda target: write_torchscript(target, layers), "onnx": lambda target: write_onnx(target, layers),
               "gru": write_gru}
    for network in networks:
        for mode in MODES:
            target = root / f"{network}-{mode}"
            target.mkdir(parents=True)
            writers[network](target)
            if mode == "unbatched":
                (target / "batching.json").write_text(json.dumps({"enabled": False}))


def _rate(served, body: bytes, threads: int, seconds: float) -> float:
    """Requests per second of ``threads`` threads invoking ``served`` for ``seconds``."""
    import threading
    import time

    done = [0] * threads
    stop = time.perf_counter() + seconds

    def loop(index: int) -> None:
        while time.perf_counter() < stop:
            served.answer(body, {"content-type": "application/json"})
            done[index] += 1

    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(done) / seconds


def in_process(root: Path, networks: list[str], threads: list[int], seconds: float) -> None:
    """The worker's side alone: ``ServedModel.answer`` (decode, predict, encode) called from N
    threads at once, as the worker's threads call it, without the front or the socket."""
    import handlers
    from handlers import serving

    cpus = len(os.sched_getaffinity(0))
    print(f"\nin process (no front): MLP {'-'.join(map(str, LAYERS))}, {seconds:g} s per point, intra-op threads {cpus}")
    print(f"{'network':8} {'threads':>7} | {'unbatched req/s':>15} | {'batched req/s':>13} | {'x req/s':>7}")
    for network in networks:
        framework, request = handlers.get(FRAMEWORKS[network]), body(network)
        if framework.setup is not None:
            framework.setup(cpus, fpmath_mode())  # the mode a worker would be given
        for count in threads:
            rates = {}
            for mode in MODES:
                served = serving.load(root / f"{network}-{mode}", FRAMEWORKS[network], "application/json", "inference.py", root)
                rates[mode] = _rate(served, request, count, seconds)
            print(f"{network:8} {count:>7} | {rates['unbatched']:>15,.0f} | {rates['batched']:>13,.0f} | "
                  f"{rates['batched'] / rates['unbatched']:>7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="MODEL_SERVER_WORKER_THREADS (default: the server's)")
    parser.add_argument("--clients", default="1,32")
    parser.add_argument("--networks", default=",".join(NETWORKS))
    parser.add_argument("--hidden", type=int, default=256, help="width of the two hidden layers")
    parser.add_argument("--in-process", default=None, metavar="THREADS",
                        help="instead: the worker's side alone, from these thread counts (e.g. 4,16,32)")
    args = parser.parse_args()
    if not args.in_process and not wrk.available():
        raise SystemExit(wrk.INSTALL_HINT)
    LAYERS[1:3] = [args.hidden, args.hidden]
    clients = [int(c) for c in args.clients.split(",")]
    networks = args.networks.split(",")
    unknown = set(networks) - set(NETWORKS)
    if unknown:
        raise SystemExit(f"unknown networks {sorted(unknown)}; choose from {', '.join(NETWORKS)}")

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "models"
        build(root, networks)
        if args.in_process:
            in_process(root, networks, [int(t) for t in args.in_process.split(",")], args.seconds)
            return
        env = {"SAGEMAKER_MULTI_MODEL": "true", "MODEL_SERVER_MODELS_ROOT": root, "MODEL_SERVER_LOG_LEVEL": "WARNING"}
        if args.threads:
            env["MODEL_SERVER_WORKER_THREADS"] = args.threads
        server = ServerProcess(env, Path(tmp) / "server.log")
        try:
            headers = {"Content-Type": "application/json"}
            bodies = {network: body(network) for network in networks}
            for network in networks:
                for mode in MODES:
                    name = f"{network}-{mode}"
                    server.load(name, root / name)
                    for _ in range(50):  # warm up: first calls trace and allocate
                        assert server.client.post(f"/models/{name}/invoke", content=bodies[network], headers=headers).status_code == 200
            figures: dict = {}
            for round_number in range(args.rounds):
                for network in networks:
                    for count in clients:
                        for mode in MODES:
                            path = f"/models/{network}-{mode}/invoke"
                            result = wrk.run(server.port, [path], bodies[network], "application/json", count, args.seconds)
                            figures.setdefault((network, count, mode), []).append(result)
                print(f"round {round_number + 1}/{args.rounds} done", flush=True)
        finally:
            server.stop()

    print(f"\nMLP {'-'.join(map(str, LAYERS))}, GRU {UNITS} units over {STEPS}x{FEATURES}; one JSON row or sequence per request, "
          f"{args.seconds:g} s per point, "
          f"median of {args.rounds} rounds, worker threads: {args.threads or 'default'}")
    print(f"{'network':8} {'clients':>7} | {'unbatched req/s':>15} {'p50 ms':>7} {'p99 ms':>7} | "
          f"{'batched req/s':>13} {'p50 ms':>7} {'p99 ms':>7} | {'x req/s':>7} {'x p50':>6}")
    for network in networks:
        for count in clients:
            plain, batched = figures[(network, count, "unbatched")], figures[(network, count, "batched")]
            rate = float(np.median([b["requests_per_s"] / p["requests_per_s"] for p, b in zip(plain, batched)]))
            p50 = float(np.median([b["p50_ms"] / p["p50_ms"] for p, b in zip(plain, batched)]))

            def med(results, key):
                return float(np.median([r[key] for r in results]))

            print(
                f"{network:8} {count:>7} | {med(plain, 'requests_per_s'):>15,.0f} {med(plain, 'p50_ms'):>7.2f} "
                f"{med(plain, 'p99_ms'):>7.2f} | {med(batched, 'requests_per_s'):>13,.0f} {med(batched, 'p50_ms'):>7.2f} "
                f"{med(batched, 'p99_ms'):>7.2f} | {rate:>7.2f} {p50:>6.2f}"
            )
    print("\ntargets: x req/s >= 3.00 at 32 clients; x p50 ~1.00 at 1 client")


if __name__ == "__main__":
    main()
