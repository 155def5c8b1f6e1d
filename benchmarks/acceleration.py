"""BF16 fast-math against fp32 on this CPU: latency, speedup, error and top-1 agreement.

    .venv/bin/python benchmarks/acceleration.py [--rounds 3] [--threads N] [--markdown]

Trains a small MLP (784-1024-1024-10) and a small CNN (three 3x3 convolutions, 3x32x32 input,
10 classes) on generated data with PyTorch, and serves the same weights in the three formats
the server runs: TorchScript (``model.pt``), a TensorFlow SavedModel and ONNX. Then, for each
framework and each math mode, a child process does what a worker does: the workers' environment
from ``server.shared.environment.worker_environment`` with ``MODEL_SERVER_BF16_FASTMATH`` true or false
(parsed by ``server.config``), the handler's ``imports`` and ``setup`` (where the switch takes
effect: it is process-wide, hence one process per configuration), ``FRAMEWORK.load`` and
``FRAMEWORK.predict`` on batches of 1, 8, 64 and 256 rows. Each child prints the median latency
per batch size and saves its predictions on a fixed evaluation set.

The machine may be shared: the configurations run in interleaved rounds (the fp32/bf16 order
alternating) and the figures are medians over rounds. Printed per framework, model and batch:
fp32 and bf16 latency, speedup, the max relative error of the bf16 outputs against fp32 (max
absolute difference over the largest fp32 output) and the share of rows whose top-1 class is the
same. Goal on a CPU with bf16 instructions: >= 1.5x at batch >= 64 for PyTorch and TensorFlow with
top-1 agreement >= 99%. ONNX Runtime has no bf16 option on x86, so there bf16 equals fp32.
"""

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from server.config import fpmath_mode  # noqa: E402
from server.diagnostics.cpu import cpu_features  # noqa: E402
from server.diagnostics.probes import predictor, set_up_like_a_worker  # noqa: E402
from server.shared.environment import worker_environment  # noqa: E402

FRAMEWORKS = ("pytorch", "tensorflow", "onnx")
MODELS = ("mlp", "cnn")
MODES = ("fp32", "bf16")
BATCHES = (1, 8, 64, 256)
EVAL_ROWS = 2048
SHAPES = {"mlp": (784,), "cnn": (3, 32, 32)}
CLASSES = 10


# ------------------------------------------------------------------------------ models (parent)


def generated_data(model: str, rows: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Ten noisy classes: random centres in 784 dimensions, or random smooth 3x32x32 patterns."""
    labels = rng.integers(0, CLASSES, rows)
    if model == "mlp":
        centres = np.random.default_rng(7).standard_normal((CLASSES, 784))
        x = 0.12 * centres[labels] + rng.standard_normal((rows, 784))
    else:
        coarse = np.random.default_rng(7).standard_normal((CLASSES, 3, 4, 4))
        patterns = coarse.repeat(8, axis=2).repeat(8, axis=3)
        x = 0.5 * patterns[labels] + rng.standard_normal((rows, 3, 32, 32))
    return x.astype(np.float32), labels


def torch_network(model: str) -> Any:
    import torch.nn as nn

    if model == "mlp":
        return nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, CLASSES))
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, CLASSES),
    )


def train(model: str, steps: int, seed: int = 0) -> Any:
    import torch

    torch.manual_seed(seed)
    network = torch_network(model)
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        x, y = generated_data(model, 64, rng)
        loss = torch.nn.functional.cross_entropy(network(torch.from_numpy(x)), torch.from_numpy(y))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return network.eval()


def save_torchscript(network: Any, model: str, directory: Path) -> None:
    import torch

    directory.mkdir(parents=True)
    with torch.no_grad():
        torch.jit.trace(network, torch.zeros((1,) + SHAPES[model])).save(str(directory / "model.pt"))


def save_onnx(network: Any, model: str, directory: Path) -> None:
    import torch

    directory.mkdir(parents=True)
    torch.onnx.export(network, torch.zeros((1,) + SHAPES[model]), str(directory / "model.onnx"), dynamo=False,
                      input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})


def save_savedmodel(network: Any, model: str, directory: Path) -> None:
    """The same weights as a SavedModel: dense layers as matmul + bias, convolutions in NHWC
    (TensorFlow's CPU layout) behind a transpose of the NCHW input all three formats take."""
    import tensorflow as tf

    parameters = [p.detach().numpy() for p in network.parameters()]  # weight, bias, weight, bias...
    weights, biases = parameters[0::2], parameters[1::2]
    holder = tf.Module()
    holder.weights = [tf.Variable(w.T if w.ndim == 2 else w.transpose(2, 3, 1, 0)) for w in weights]
    holder.biases = [tf.Variable(b) for b in biases]

    def forward(x: Any) -> Any:
        if model == "cnn":
            x = tf.transpose(x, (0, 2, 3, 1))
            for i in range(3):
                x = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, holder.weights[i], 1, "SAME"), holder.biases[i]))
                x = tf.nn.max_pool2d(x, 2, 2, "VALID") if i < 2 else tf.reduce_mean(x, axis=(1, 2))
            return tf.linalg.matmul(x, holder.weights[3]) + holder.biases[3]
        for i in range(3):
            x = tf.linalg.matmul(x, holder.weights[i]) + holder.biases[i]
            x = tf.nn.relu(x) if i < 2 else x
        return x

    holder.serve = tf.function(forward, input_signature=[tf.TensorSpec((None,) + SHAPES[model], tf.float32, name="x")])
    tf.saved_model.save(holder, str(directory), signatures={"serving_default": holder.serve})


def build(root: Path, train_steps: int) -> dict[str, float]:
    """Every model in every format under ``root/<framework>/<model>/``, the evaluation inputs in
    ``root/<model>-eval.npy``; returns the fp32 accuracy of each trained model."""
    import torch

    accuracy = {}
    for model in MODELS:
        network = train(model, train_steps)
        x, y = generated_data(model, EVAL_ROWS, np.random.default_rng(123))
        np.save(root / f"{model}-eval.npy", x)
        with torch.no_grad():
            accuracy[model] = float((network(torch.from_numpy(x)).argmax(1).numpy() == y).mean())
        save_torchscript(network, model, root / "pytorch" / model)
        save_onnx(network, model, root / "onnx" / model)
        save_savedmodel(network, model, root / "tensorflow" / model)
    return accuracy


# ------------------------------------------------------------------------------ child


def fastmath_state(name: str, module: Any) -> str:
    """What the handler's setup switched on, as it reports it."""
    if name == "pytorch":
        return str(module.fastmath)
    if name == "tensorflow":
        import tensorflow as tf

        return "bf16-rewrite" if tf.config.optimizer.get_experimental_options().get(module.BF16_REWRITE) else "fp32"
    return "mlas-bf16" if module.wants_bf16_fastmath() else "fp32 (no x86 option)"


def median_latency(call: Any, budget: float = 0.4, least: int = 7, most: int = 60) -> tuple[float, float]:
    """Median wall-clock and process-CPU milliseconds of ``call``. On a shared machine the wall
    clock also counts the time other processes held the cores; CPU time counts only our work."""
    for _ in range(3):
        call()
    wall: list[float] = []
    cpu: list[float] = []
    started = time.perf_counter()
    while len(wall) < most and (len(wall) < least or time.perf_counter() - started < budget):
        begin, begin_cpu = time.perf_counter(), time.process_time()
        call()
        wall.append(time.perf_counter() - begin)
        cpu.append(time.process_time() - begin_cpu)
    return statistics.median(wall) * 1e3, statistics.median(cpu) * 1e3


def child(name: str, root: Path, out: Path, threads: int) -> None:
    module = set_up_like_a_worker(name, threads)
    result: dict[str, Any] = {"fastmath": fastmath_state(name, module), "latency_ms": {}}
    for model in MODELS:
        directory = root / name / model
        run = predictor(module, {model: module.FRAMEWORK.load(module.FRAMEWORK.find(directory))}, directory)
        x = np.load(root / f"{model}-eval.npy")
        result["latency_ms"][model] = {  # (wall, cpu)
            str(b): median_latency(functools.partial(run, model, x[:b])) for b in BATCHES
        }
        outputs = np.concatenate([np.asarray(run(model, x[i : i + 256])) for i in range(0, len(x), 256)])
        np.save(out.with_name(f"{out.stem}-{model}.npy"), outputs.astype(np.float32))
    out.write_text(json.dumps(result))


# ------------------------------------------------------------------------------ parent


def run_child(name: str, mode: str, root: Path, threads: int, timeout: float = 900) -> dict[str, Any]:
    out = root / f"result-{name}-{mode}.json"
    switch = {"MODEL_SERVER_BF16_FASTMATH": "true" if mode == "bf16" else "false"}
    base = {k: v for k, v in os.environ.items() if k not in ("ONEDNN_DEFAULT_FPMATH_MODE", "DNNL_DEFAULT_FPMATH_MODE")}
    env = worker_environment(threads, fpmath_mode(switch), base)
    done = subprocess.run([sys.executable, __file__, "--child", name, str(root), str(out), str(threads)],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise SystemExit(f"{name} {mode} failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.read_text())
    result["outputs"] = {model: np.load(out.with_name(f"{out.stem}-{model}.npy")) for model in MODELS}
    return result


def compare(fp32: np.ndarray, bf16: np.ndarray) -> tuple[float, float]:
    error = float(np.max(np.abs(bf16.astype(np.float64) - fp32)) / np.max(np.abs(fp32)))
    return error, float((fp32.argmax(1) == bf16.argmax(1)).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--framework", action="append", choices=FRAMEWORKS)
    parser.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        name, root, out, threads = args.child
        child(name, Path(root), Path(out), int(threads))
        return
    frameworks = tuple(args.framework or FRAMEWORKS)
    cpu = cpu_features()
    print(f"CPU: {cpu['model']} ({cpu['architecture']}), bf16 instructions: {cpu['bf16']} ({', '.join(cpu['features'])}); "
          f"{args.threads} threads; {args.rounds} interleaved rounds, medians")
    with tempfile.TemporaryDirectory(prefix="bench-accel-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        accuracy = build(root, args.train_steps)
        print(f"models trained and exported in {time.perf_counter() - started:.0f}s; fp32 accuracy "
              + ", ".join(f"{m} {a:.1%}" for m, a in accuracy.items()))
        latencies: dict[tuple[str, str, str, str], list[list[float]]] = {}
        last: dict[tuple[str, str], dict[str, Any]] = {}
        for round_ in range(args.rounds):
            for name in frameworks:
                for mode in MODES if round_ % 2 == 0 else MODES[::-1]:
                    result = run_child(name, mode, root, args.threads)
                    last[name, mode] = result
                    for model, per_batch in result["latency_ms"].items():
                        for batch, ms in per_batch.items():
                            latencies.setdefault((name, model, mode, batch), []).append(ms)
            print(f"round {round_ + 1}/{args.rounds} done ({time.perf_counter() - started:.0f}s)", flush=True)
        rows = []
        for name in frameworks:
            for model in MODELS:
                error, agreement = compare(last[name, "fp32"]["outputs"][model], last[name, "bf16"]["outputs"][model])
                for batch in map(str, BATCHES):
                    fp32 = [statistics.median(m) for m in zip(*latencies[name, model, "fp32", batch])]
                    bf16 = [statistics.median(m) for m in zip(*latencies[name, model, "bf16", batch])]
                    rows.append((name, last[name, "bf16"]["fastmath"], model, batch, fp32[0], bf16[0], fp32[0] / bf16[0],
                                 fp32[1], bf16[1], fp32[1] / bf16[1], error, agreement))
    header = ("framework", "bf16 switch", "model", "batch", "fp32 ms", "bf16 ms", "speedup", "fp32 cpu-ms", "bf16 cpu-ms",
              "cpu speedup", "max rel err", "top-1 agree")
    cells = [(*r[:4], f"{r[4]:.2f}", f"{r[5]:.2f}", f"{r[6]:.2f}x", f"{r[7]:.2f}", f"{r[8]:.2f}", f"{r[9]:.2f}x",
              f"{r[10]:.1e}", f"{r[11]:.2%}") for r in rows]
    print("  ".join(f"{h:>11}" for h in header))
    for cell in cells:
        print("  ".join(f"{v:>11}" for v in cell))
    goal = [r for r in rows if r[0] in ("pytorch", "tensorflow") and int(r[3]) >= 64]
    short = [f"{r[0]} {r[2]} b{r[3]} {r[6]:.2f}x (cpu {r[9]:.2f}x) {r[11]:.2%}" for r in goal if r[6] < 1.5 or r[11] < 0.99]
    print("goal (>= 1.5x at batch >= 64 for pytorch and tensorflow, top-1 agreement >= 99%): "
          + ("met" if not short else "NOT met by: " + ", ".join(short)))
    if args.markdown:
        print("\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
        for cell in cells:
            print("| " + " | ".join(map(str, cell)) + " |")

if __name__ == "__main__":
    main()
