"""The acceleration report: what math each framework really does on this CPU.

``python -m server accel-report`` prints, as JSON, per framework (PyTorch, TensorFlow, ONNX
Runtime; XGBoost and scikit-learn by version only): its version, the architecture, whether the
CPU has bf16 instructions, whether oneDNN and the Arm Compute Library are there, the fpmath mode
the workers get, and for each operation a served model runs (``linear``, ``matmul``, ``conv``)
the kernel oneDNN ran it on and its error against float64; then a verdict on whether BF16
fast-math is active. With ``MODEL_SERVER_ACCEL_REPORT=true`` (the images' default) the server
logs the same report as one line at start.

Why measure rather than read the setting: ``DNNL_DEFAULT_FPMATH_MODE=BF16`` puts
``attr-fpmath:bf16`` on oneDNN's kernels on any CPU, also where the kernel chosen ignores it
(x86 without AMX, ``brg:sve_512`` on 512-bit SVE) or where the framework does not call oneDNN at
all (MKL or OpenBLAS sgemm, oneDNN's sgemm API, ONNX Runtime's MLAS). So the verdict of each
operation follows the kernel seen in oneDNN's verbose log and the error: about 1e-7 is fp32
arithmetic, about 1e-3 is bf16 (8 significant bits instead of 24). Never the variable.

Each framework is probed in a child process (``python -m server.acceleration probe NAME THREADS
FILE``) with ``ONEDNN_VERBOSE=1`` and the environment the workers get. The child does what a
worker does: imports the framework, calls its handler's ``setup`` (which turns BF16 fast-math on
or off), saves tiny models in the framework's served format, loads them with the handler's
``load`` and runs them through its ``predict``. Nothing heavy is imported by the caller, and
oneDNN's verbose lines, printed on the child's stdout between markers naming each operation,
are read back.
"""

import asyncio
import ctypes
import importlib
import json
import logging
import os
import platform
import re
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any

Info = dict[str, Any]
Array = Any  # a numpy array; numpy is imported by the probes only

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROBED = ("torch", "tensorflow", "onnxruntime")
HANDLERS = {"torch": "pytorch", "tensorflow": "tensorflow", "onnxruntime": "onnx"}  # handlers.frameworks.<name>
VERSION_ONLY = {"xgboost": ("xgboost-cpu", "xgboost"), "scikit-learn": ("scikit-learn",)}
OPS = ("linear", "matmul", "conv")  # what served networks spend their time in
SIZE = 256  # matmul size of the probes: big enough for oneDNN/ACL/MLAS to take their GEMM paths
CONV_INPUT, CONV_WEIGHT = (8, 16, 32, 32), (32, 16, 3, 3)  # NCHW input, OIHW weight
BF16_ERROR = 1e-4  # error above this: reduced-precision arithmetic (bf16 ~1e-3, fp32 ~1e-7)
PROBE_TIMEOUT = 240.0
MARK = "accel-probe-op,"  # the child's line before each operation's verbose lines
FPMATH_VARIABLE = "DNNL_DEFAULT_FPMATH_MODE"  # normalized for the workers by server.workers.worker_environment

# ------------------------------------------------------------------------------------------ CPU

AT_HWCAP, AT_HWCAP2 = 16, 26
HWCAP_SVE = 1 << 22
HWCAP2_SVE2, HWCAP2_SVEBF16, HWCAP2_I8MM, HWCAP2_BF16 = 1 << 1, 1 << 12, 1 << 13, 1 << 14
ARM_PARTS = {  # /proc/cpuinfo "CPU part" of the Neoverse cores behind Graviton
    "0xd0c": "Neoverse-N1 (Graviton2)",
    "0xd40": "Neoverse-V1 (Graviton3)",
    "0xd4f": "Neoverse-V2 (Graviton4)",
}
X86_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")


def parse_auxv(data: bytes) -> dict[int, int]:
    """The (type -> value) pairs of a ``/proc/self/auxv`` image (native unsigned longs)."""
    entries = {}
    size = struct.calcsize("@LL")
    for kind, value in struct.iter_unpack("@LL", data[: len(data) - len(data) % size]):
        if kind == 0:  # AT_NULL
            break
        entries[kind] = value
    return entries


def read_auxv() -> dict[int, int]:
    try:
        return parse_auxv(Path("/proc/self/auxv").read_bytes())
    except OSError:
        pass
    try:  # getauxval(3) where /proc is not mounted
        getauxval = ctypes.CDLL(None).getauxval
        getauxval.restype = ctypes.c_ulong
        return {kind: int(getauxval(kind)) for kind in (AT_HWCAP, AT_HWCAP2)}
    except (OSError, AttributeError):
        return {}


def cpu_features(machine: str | None = None, cpuinfo: str | None = None, auxv: dict[int, int] | None = None) -> Info:
    """Architecture and bf16 support: HWCAP2_BF16 on arm64, AVX512-BF16 or AMX-BF16 on x86."""
    machine = (machine or platform.machine()).lower()
    machine = {"arm64": "aarch64", "amd64": "x86_64"}.get(machine, machine)
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    if machine == "aarch64":
        auxv = read_auxv() if auxv is None else auxv
        hwcap, hwcap2 = auxv.get(AT_HWCAP, 0), auxv.get(AT_HWCAP2, 0)
        named = {"sve": hwcap & HWCAP_SVE, "sve2": hwcap2 & HWCAP2_SVE2, "bf16": hwcap2 & HWCAP2_BF16,
                 "svebf16": hwcap2 & HWCAP2_SVEBF16, "i8mm": hwcap2 & HWCAP2_I8MM}
        part = fields.get("CPU part", "").lower()
        return {
            "architecture": machine,
            "model": ARM_PARTS.get(part, f"CPU part {part}" if part else "unknown"),
            "bf16": bool(hwcap2 & HWCAP2_BF16),
            "features": [name for name, bit in named.items() if bit],
            "source": "AT_HWCAP/AT_HWCAP2" if auxv else "unavailable",
        }
    flags = set(fields.get("flags", "").split())
    return {
        "architecture": machine,
        "model": fields.get("model name", "unknown"),
        "bf16": bool(flags & {"avx512_bf16", "amx_bf16"}),
        "features": [flag for flag in X86_FLAGS if flag in flags],
        "source": "/proc/cpuinfo flags" if flags else "unavailable",
    }


# ------------------------------------------------------------------------------ oneDNN verbose

COMPUTE_PRIMITIVES = ("matmul", "inner_product", "gemm_api", "convolution")


def parse_verbose(lines: Iterable[str]) -> list[Info]:
    """The primitive executions in oneDNN verbose output (``ONEDNN_VERBOSE=1``).

    Takes the formats of oneDNN 2.x and 3.x: ``onednn_verbose[,v1][,timestamp][,primitive],exec,
    engine,primitive,implementation,prop_kind,memory descriptors,attributes,auxiliary,problem,time``
    (also ``dnnl_verbose``). Creation, info and graph-API lines are skipped.
    """
    records = []
    for line in lines:
        line = line.strip()
        if not line.startswith(("onednn_verbose,", "dnnl_verbose,")):
            continue
        fields = line.split(",")
        if "exec" not in fields:
            continue
        at = fields.index("exec")
        if fields[at - 1] == "graph" or len(fields) < at + 7:
            continue
        engine, kind, implementation, prop_kind, descriptors, attributes = fields[at + 1 : at + 7]
        fpmath = re.search(r"attr-fpmath:(\w+)", attributes)
        source = re.search(r"\bsrc[_:]([a-z0-9]+)", descriptors)
        try:
            milliseconds: float | None = float(fields[-1])
        except ValueError:
            milliseconds = None
        records.append({
            "engine": engine,
            "primitive": kind,
            "implementation": implementation,
            "prop_kind": prop_kind,
            "src_type": source.group(1) if source else None,
            "fpmath": fpmath.group(1) if fpmath else None,
            "problem": fields[-2] if len(fields) > at + 8 else "",
            "ms": milliseconds,
        })
    return records


def _computing(records: list[Info]) -> list[Info]:
    return [r for r in records if r["primitive"] in COMPUTE_PRIMITIVES]


def kernel(records: list[Info]) -> str | None:
    """The implementation oneDNN ran matrix products and convolutions on most often
    (``gemm:acl``, ``brg_matmul:avx512_core_bf16``, ``jit:avx2``...); ``gemm_api`` for its sgemm
    API, which names none."""
    counts = Counter(r["implementation"] or r["primitive"] for r in _computing(records))
    return counts.most_common(1)[0][0] if counts else None


def fpmath_attribute(records: list[Info]) -> str | None:
    """The fpmath attribute on oneDNN's matrix products and convolutions, if any carried one."""
    modes = Counter(r["fpmath"] for r in _computing(records) if r["fpmath"])
    return modes.most_common(1)[0][0] if modes else None


def data_types(records: list[Info]) -> list[str]:
    """The source data types oneDNN's matrix products and convolutions ran on (f32, bf16...)."""
    return sorted({r["src_type"] for r in _computing(records) if r["src_type"]})


def split_by_operation(lines: Iterable[str]) -> dict[str, list[str]]:
    """The child's stdout cut at its ``MARK`` lines: the lines printed while each operation ran."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lines:
        if line.startswith(MARK):
            current = sections.setdefault(line[len(MARK):].strip(), [])
        elif current is not None:
            current.append(line)
    return sections


def judge(error: float, records: list[Info]) -> Info:
    """One operation's verdict from the kernel oneDNN ran it on and its error against float64.

    bf16 only when both say so: a bf16-level error, and either a oneDNN kernel on bf16 data or
    with the bf16 fpmath attribute, or no oneDNN kernel at all (the framework's own GEMM, e.g.
    MLAS: then the error alone tells). An fp32-level error is fp32 whatever the attribute says.
    """
    implementation, types, fpmath = kernel(records), data_types(records), fpmath_attribute(records)
    reduced = error > BF16_ERROR
    if implementation is None:
        seen = "no oneDNN kernel (the framework's own GEMM: MKL, OpenBLAS, Eigen or MLAS)"
        bf16 = reduced
    else:
        seen = f"{implementation} on {'/'.join(types) or 'unknown'} data"
        if fpmath:
            seen += f" with attr-fpmath:{fpmath}" + (" (ignored by this kernel)" if fpmath == "bf16" and not reduced else "")
        bf16 = reduced and ("bf16" in types or fpmath == "bf16")
    arithmetic = "bf16" if bf16 else "reduced, not by a bf16 kernel" if reduced else "fp32"
    return {"max_rel_error": error, "kernel": implementation, "data_types": types, "fpmath_attribute": fpmath,
            "arithmetic": arithmetic, "bf16": bf16, "evidence": f"{seen}; error {error:.1e}"}


# ----------------------------------------------------------------------- probes (child process)


def operands(rng: Any) -> dict[str, tuple[Array, Array, Array | None, Array]]:
    """Per operation: input, weight, bias (or None) and the float64 result they should give.

    ``linear`` is ``x @ w + b`` (w stored input-major), ``matmul`` is ``x @ w``, ``conv`` a 3x3
    convolution of an NCHW batch with an OIHW weight, stride 1, no padding, plus bias.
    """
    import numpy as np

    def normal(*shape: int) -> Array:
        return rng.standard_normal(shape).astype(np.float32)

    x, w, b = normal(SIZE, SIZE), normal(SIZE, SIZE), normal(SIZE)
    m, v = normal(SIZE, SIZE), normal(SIZE, SIZE)
    image, kernel_, bias = normal(*CONV_INPUT), normal(*CONV_WEIGHT), normal(CONV_WEIGHT[0])
    height, width = CONV_WEIGHT[2:]
    windows = np.lib.stride_tricks.sliding_window_view(image.astype(np.float64), (height, width), axis=(2, 3))
    conv = np.einsum("nchwij,ocij->nohw", windows, kernel_.astype(np.float64), optimize=True) + bias[None, :, None, None]
    return {
        "linear": (x, w, b, x.astype(np.float64) @ w.astype(np.float64) + b),
        "matmul": (m, v, None, m.astype(np.float64) @ v.astype(np.float64)),
        "conv": (image, kernel_, bias, conv),
    }


Served = Callable[[str, Array], Array]  # (operation, input) -> the handler's output


def serve_torch(module: Any, directory: Path, data: dict[str, tuple[Array, Array, Array | None, Array]]) -> Served:
    """TorchScript files of the three operations, loaded and run by the PyTorch handler."""
    import torch

    x, w, b, _ = data["linear"]
    linear = torch.nn.Linear(SIZE, SIZE)
    linear.load_state_dict({"weight": torch.from_numpy(w.T.copy()), "bias": torch.from_numpy(b)})
    _, v, _, _ = data["matmul"]

    class MatMul(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.from_numpy(v))

        def forward(self, inputs: Any) -> Any:
            return torch.matmul(inputs, self.weight)

    image, k, bias, _ = data["conv"]
    conv = torch.nn.Conv2d(CONV_WEIGHT[1], CONV_WEIGHT[0], CONV_WEIGHT[2])
    conv.load_state_dict({"weight": torch.from_numpy(k), "bias": torch.from_numpy(bias)})
    models = {}
    for name, network, example in (("linear", linear, x), ("matmul", MatMul(), x), ("conv", conv, image)):
        path = directory / name / "model.pt"
        path.parent.mkdir()
        with torch.no_grad():
            torch.jit.trace(network.eval(), torch.from_numpy(example)).save(str(path))
        models[name] = module.FRAMEWORK.load(path)
    return predictor(module, models, directory)


def serve_tensorflow(module: Any, directory: Path, data: dict[str, tuple[Array, Array, Array | None, Array]]) -> Served:
    """A SavedModel with one signature per operation, loaded and run by the TensorFlow handler."""
    import tensorflow as tf

    _, w, b, _ = data["linear"]
    _, v, _, _ = data["matmul"]
    _, k, bias, _ = data["conv"]
    holder = tf.Module()
    holder.w, holder.b, holder.v = tf.Variable(w), tf.Variable(b), tf.Variable(v)
    holder.k, holder.bias = tf.Variable(k.transpose(2, 3, 1, 0)), tf.Variable(bias)  # HWIO, as Keras keeps it
    rows = tf.TensorSpec([None, SIZE], tf.float32, name="x")
    images = tf.TensorSpec([None, CONV_INPUT[2], CONV_INPUT[3], CONV_INPUT[1]], tf.float32, name="x")  # NHWC
    holder.linear = tf.function(lambda x: tf.nn.bias_add(tf.linalg.matmul(x, holder.w), holder.b), input_signature=[rows])
    holder.matmul = tf.function(lambda x: tf.linalg.matmul(x, holder.v), input_signature=[rows])
    holder.conv = tf.function(lambda x: tf.nn.bias_add(tf.nn.conv2d(x, holder.k, 1, "VALID"), holder.bias),
                              input_signature=[images])
    path = directory / "savedmodel"
    tf.saved_model.save(holder, str(path), signatures={name: getattr(holder, name) for name in OPS})
    model = module.FRAMEWORK.load(path)
    predict = predictor(module, dict.fromkeys(OPS, model), directory, tfs_signature=True)

    def run(name: str, array: Array) -> Array:
        if name != "conv":
            return predict(name, array)
        return predict(name, array.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)  # NCHW <-> NHWC

    return run


def serve_onnxruntime(module: Any, directory: Path, data: dict[str, tuple[Array, Array, Array | None, Array]]) -> Served:
    """ONNX files of the three operations (``Gemm``, ``MatMul``, ``Conv``), loaded and run by the
    ONNX handler (its session options carry the fast-math switch where one exists)."""
    models = {}
    for name, op_type in (("linear", "Gemm"), ("matmul", "MatMul"), ("conv", "Conv")):
        x, w, b, exact = data[name]
        initializers = [("W", w)] + ([("B", b)] if b is not None else [])
        path = directory / f"{name}.onnx"
        path.write_bytes(onnx_model(op_type, x.shape, initializers, exact.shape))
        models[name] = module.FRAMEWORK.load(path)
    return predictor(module, models, directory)


def predictor(module: Any, models: dict[str, Any], directory: Path, tfs_signature: bool = False) -> Served:
    """``run(name, array)``: the handler's ``predict`` on ``models[name]``, as a worker calls it;
    its array out (TensorFlow's first output). ``tfs_signature``: ``name`` is also the signature."""
    from handlers.codecs import JSON
    from handlers.context import CUSTOM_ATTRIBUTES, Context

    def run(name: str, array: Array) -> Array:
        headers = {CUSTOM_ATTRIBUTES.lower(): f"tfs-signature={name}"} if tfs_signature else {}
        output = module.FRAMEWORK.predict(models[name], array, Context(str(directory), JSON, headers))
        outputs = getattr(output, "outputs", None)  # TensorFlow's Result: {name: array}
        return next(iter(outputs.values())) if isinstance(outputs, dict) else output

    return run


SERVERS: dict[str, Callable[[Any, Path, dict[str, tuple[Array, Array, Array | None, Array]]], Served]] = {
    "torch": serve_torch, "tensorflow": serve_tensorflow, "onnxruntime": serve_onnxruntime,
}


def describe_torch(module: Any) -> Info:
    import torch

    config = torch.__config__.show()
    version = re.search(r"(?:MKL-DNN|oneDNN) v([\d.]+)", config)
    blas = re.search(r"BLAS_INFO=(\w+)", config)
    mkldnn: Any = torch.backends.mkldnn  # its matmul/conv precision objects are set at import
    return {
        "version": torch.__version__,
        "cuda": torch.version.cuda,
        "onednn": bool(mkldnn.is_available()),
        "onednn_version": version.group(1) if version else None,
        "acl": bool(mkldnn.is_acl_available()) if hasattr(mkldnn, "is_acl_available") else None,
        "blas": blas.group(1) if blas else None,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkldnn_matmul_fp32_precision": str(mkldnn.matmul.fp32_precision),
        "mkldnn_conv_fp32_precision": str(mkldnn.conv.fp32_precision),
        "fastmath_route": module.fastmath,  # what the handler's setup switched on
        "threads": torch.get_num_threads(),
    }


def describe_tensorflow(module: Any) -> Info:
    import tensorflow as tf
    from tensorflow.python.util import _pywrap_util_port as port

    options = tf.config.optimizer.get_experimental_options()
    return {
        "version": tf.__version__,
        "onednn": bool(port.IsMklEnabled()),  # built with oneDNN and TF_ENABLE_ONEDNN_OPTS not 0
        "tf_enable_onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
        "bf16_rewrite": bool(options.get(module.BF16_REWRITE, False)),  # what the handler's setup switched on
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
    }


def describe_onnxruntime(module: Any) -> Info:
    import onnxruntime

    info = {
        "version": onnxruntime.__version__,
        "onednn": False,  # the CPU execution provider runs MLAS
        "bf16_session_option": module.wants_bf16_fastmath(),  # what the handler's session options set
    }
    if platform.machine().lower() not in ("aarch64", "arm64"):
        info["note"] = (f"ONNX Runtime has no bf16 fast-math option on {platform.machine()} "
                        f"({module.BF16_FASTMATH} is arm64-only): ONNX models compute in fp32 here")
    return info


DESCRIBERS: dict[str, Callable[[Any], Info]] = {
    "torch": describe_torch, "tensorflow": describe_tensorflow, "onnxruntime": describe_onnxruntime,
}


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, value: int | str | bytes) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    data = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def onnx_model(op_type: str, input_shape: tuple[int, ...], initializers: list[tuple[str, Array]],
               output_shape: tuple[int, ...]) -> bytes:
    """An ONNX model ``Y = op_type(X, *initializers)`` on float32, with the weights as
    initializers (as models hold them) and no node attributes (``Gemm``: ``X @ W + B``; ``Conv``:
    kernel from W, stride 1, no padding). Encoded by hand: the runtime set has ONNX Runtime but not
    the ``onnx`` package."""

    def shape(dims: tuple[int, ...]) -> bytes:
        return b"".join(_field(1, _field(1, d)) for d in dims)

    def value_info(name: str, dims: tuple[int, ...]) -> bytes:
        return _field(1, name) + _field(2, _field(1, _field(1, 1) + _field(2, shape(dims))))

    def tensor(name: str, array: Array) -> bytes:
        return b"".join(_field(1, d) for d in array.shape) + _field(2, 1) + _field(8, name) + _field(9, array.astype("<f4").tobytes())

    names = ["X"] + [name for name, _ in initializers]
    node = b"".join(_field(1, name) for name in names) + _field(2, "Y") + _field(3, "op") + _field(4, op_type)
    graph = (_field(1, node) + _field(2, "probe") + b"".join(_field(5, tensor(n, a)) for n, a in initializers)
             + _field(11, value_info("X", input_shape)) + _field(12, value_info("Y", output_shape)))
    return _field(1, 8) + _field(2, "model-server") + _field(7, graph) + _field(8, _field(1, "") + _field(2, 17))


def onnx_matmul_model(weight: Array) -> bytes:
    """``Y = X @ W`` for a batch of ``SIZE`` rows."""
    return onnx_model("MatMul", (SIZE, weight.shape[0]), [("W", weight)], (SIZE, weight.shape[1]))


def relative_error(got: Array, exact: Array) -> float:
    """Max error of ``got`` relative to the largest float64 result."""
    import numpy as np

    return float(np.max(np.abs(np.asarray(got, dtype=np.float64) - exact)) / np.max(np.abs(exact)))


def _mark(name: str) -> None:
    """Say on stdout which operation the next verbose lines belong to (C's stdio buffer first)."""
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass
    sys.stdout.flush()
    os.write(1, f"{MARK}{name}\n".encode())


def set_up_like_a_worker(handler: str, threads: int) -> Any:
    """Import ``handlers.frameworks.<handler>`` and its framework and call its ``setup``, as
    ``server.worker`` does at start: BF16 fast-math goes on or off there, from the environment."""
    module = importlib.import_module(f"handlers.frameworks.{handler}")
    for imported in module.FRAMEWORK.imports:
        importlib.import_module(imported)
    if module.FRAMEWORK.setup is not None:
        module.FRAMEWORK.setup(threads)
    return module


def probe(name: str, threads: int) -> Info:
    """In the child: one framework set up, its operations served and measured, as a worker would."""
    import numpy as np

    module = set_up_like_a_worker(HANDLERS[name], threads)
    info = DESCRIBERS[name](module)
    data = operands(np.random.default_rng(0))
    errors = {}
    with tempfile.TemporaryDirectory(prefix="accel-models-") as tmp:
        run = SERVERS[name](module, Path(tmp), data)
        for op in OPS:
            x, _, _, exact = data[op]
            _mark(op)
            for _ in range(2):  # TorchScript optimizes on its second run; the last one counts
                got = run(op, x)
            errors[op] = relative_error(got, exact)
        _mark("end")
    info["errors"] = errors
    return info


def die_with_parent() -> None:
    """Linux: be killed when the process that started us dies, so a report never outlives it."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _probe_main(name: str, threads: int, result_path: str) -> int:
    die_with_parent()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    started = time.perf_counter()
    try:
        info = probe(name, threads)
    except ImportError as err:
        info = {"error": f"not installed ({err})"}
    except Exception as err:  # noqa: BLE001 - a report, not a server: say what failed
        info = {"error": f"{type(err).__name__}: {err}"}
    info["probe_seconds"] = round(time.perf_counter() - started, 2)
    Path(result_path).write_text(json.dumps(info))
    return 0


# ------------------------------------------------------------------------------ report (parent)


def run_probe(name: str, env: dict[str, str], threads: int, timeout: float = PROBE_TIMEOUT) -> Info:
    """Probe one framework in a child process and judge each operation from its verbose lines."""
    child_env = {**env, "ONEDNN_VERBOSE": "1", "DNNL_VERBOSE": "1"}
    child_env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory(prefix="accel-") as tmp:
        result = Path(tmp) / "result.json"
        try:
            done = subprocess.run(
                [sys.executable, "-m", "server.acceleration", "probe", name, str(threads), str(result)],
                env=child_env, cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, capture_output=True,
                text=True, errors="replace", timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return {"error": f"probe did not finish within {timeout:.0f}s"}
        if not result.exists():
            tail = " | ".join(done.stderr.strip().splitlines()[-3:])
            return {"error": f"probe exited with code {done.returncode}: {tail}"}
        info: Info = json.loads(result.read_text())
    if "errors" not in info:
        return info
    sections = split_by_operation(done.stdout.splitlines())
    records = {op: parse_verbose(sections.get(op, [])) for op in info["errors"]}
    info["ops"] = {op: judge(error, records[op]) for op, error in info.pop("errors").items()}
    everything = [record for op_records in records.values() for record in op_records]
    info["gemm_kernel"] = info["ops"].get("linear", {}).get("kernel")  # nn.Linear's / Dense's, as before per-op results
    info["fpmath_attribute"] = fpmath_attribute(everything)
    info["onednn_calls"] = dict(Counter(f"{r['primitive']},{r['implementation'] or '-'}" for r in everything))
    if info.get("acl") is None and kernel(everything):
        info["acl"] = "acl" in str(kernel(everything))
    ops = info["ops"]
    info["bf16_ops"] = [op for op in OPS if ops.get(op, {}).get("bf16")]
    info["max_rel_error"] = max(op["max_rel_error"] for op in ops.values())
    info["arithmetic"] = "bf16" if len(info["bf16_ops"]) == len(ops) else "mixed" if info["bf16_ops"] else "fp32"
    info["bf16_fastmath_active"] = bool(info["bf16_ops"])
    return info


def _version(distributions: tuple[str, ...]) -> Info:
    for name in distributions:
        try:
            return {"version": metadata.version(name)}
        except metadata.PackageNotFoundError:
            continue
    return {"error": "not installed"}


def verdict(cpu: Info, requested: bool, mode: str, frameworks: dict[str, Info]) -> Info:
    """The report's conclusion, from what the probes measured; ``requested`` only words it."""
    probed = {n: f for n, f in frameworks.items() if "ops" in f}
    active = sorted(n for n, f in probed.items() if f["bf16_fastmath_active"])
    fp32 = sorted(n for n in probed if n not in active)
    if active:
        worst = max(probed[n]["max_rel_error"] for n in active)
        where = ", ".join(f"{n} ({', '.join(probed[n]['bf16_ops'])})" for n in active)
        summary = f"BF16 fast-math active in {where}: bf16 kernels and bf16-level error (up to {worst:.1e})"
        if fp32:
            summary += f"; fp32 in {', '.join(fp32)}"
    elif not probed:
        summary = "no framework could be probed"
    else:
        worst = max(f["max_rel_error"] for f in probed.values())
        if requested and not cpu["bf16"]:
            summary = (f"BF16 fast-math requested (fpmath {mode}) but inactive: this CPU has no bf16 "
                       f"instructions, GEMMs and convolutions run in fp32 (error {worst:.1e})")
        elif requested:
            summary = (f"BF16 fast-math requested (fpmath {mode}) but inactive: fp32 kernels and fp32-level "
                       f"error ({worst:.1e}) in every framework probed")
        else:
            summary = f"BF16 fast-math inactive: not requested (fpmath {mode}); fp32 arithmetic (error {worst:.1e})"
    return {"bf16_fastmath_active": bool(active), "active_in": active, "requested": requested, "summary": summary}


def report(env: dict[str, str] | None = None, frameworks: tuple[str, ...] = PROBED, timeout: float = PROBE_TIMEOUT,
           threads: int | None = None) -> Info:
    """The whole report, probing ``frameworks`` in parallel child processes with ``env`` (the
    workers' environment, whose fpmath mode ``server.workers.worker_environment`` normalized)."""
    env = dict(os.environ if env is None else env)
    threads = threads or len(os.sched_getaffinity(0))
    cpu = cpu_features()
    mode = env.get(FPMATH_VARIABLE) or "STRICT"
    started = time.perf_counter()
    with ThreadPoolExecutor(max(1, len(frameworks))) as pool:
        futures = {name: pool.submit(run_probe, name, env, threads, timeout) for name in frameworks}
        results = {name: future.result() for name, future in futures.items()}
    for info in results.values():
        info.update(architecture=cpu["architecture"], cpu_bf16=cpu["bf16"], fpmath_mode=mode)
    results.update({name: _version(dists) for name, dists in VERSION_ONLY.items()})
    return {
        "verdict": verdict(cpu, mode == "BF16", mode, results),
        "architecture": cpu["architecture"],
        "cpu": cpu,
        "fpmath_mode": mode,
        "bf16_fastmath_requested": mode == "BF16",
        "frameworks": results,
        "seconds": round(time.perf_counter() - started, 2),
    }


def command(frameworks: list[str] | None, compact: bool, nice: int) -> int:
    """``python -m server accel-report``: the report for the workers' environment, on stdout."""
    from server.config import ConfigError, Settings
    from server.workers import worker_environment

    die_with_parent()
    if nice:
        os.nice(nice)
    try:
        settings = Settings.from_env()
    except ConfigError as err:
        print(f"configuration error: {err}", file=sys.stderr)
        return 2
    env = worker_environment(settings.intra_op_threads, settings.fpmath_mode)
    result = report(env, tuple(frameworks or PROBED), threads=settings.intra_op_threads)
    print(json.dumps(result, separators=(",", ":")) if compact else json.dumps(result, indent=2))
    return 0


async def log_report(logger: logging.Logger, timeout: float = 600.0) -> None:
    """Run the report in a child process, off the event loop, and log it as one line.

    The child and its probes form their own process group, killed when this task is cancelled
    (the service stops) or times out, so the report never leaves a process behind.
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", "accel-report", "--compact", "--nice", "10",
        cwd=PROJECT_ROOT, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, start_new_session=True,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        logger.warning("acceleration report: no answer within %.0fs, stopped", timeout)
        return
    finally:
        if process.returncode is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            await process.wait()
    if process.returncode != 0:
        tail = " | ".join(stderr.decode(errors="replace").strip().splitlines()[-3:])
        logger.warning("acceleration report failed (exit code %s): %s", process.returncode, tail)
        return
    logger.info("acceleration report %s", stdout.decode(errors="replace").strip())


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "probe" and sys.argv[2] in PROBED and sys.argv[3].isdigit():
        sys.exit(_probe_main(sys.argv[2], int(sys.argv[3]), sys.argv[4]))
    sys.exit("usage: python -m server.acceleration probe {torch,tensorflow,onnxruntime} THREADS RESULT_FILE")
