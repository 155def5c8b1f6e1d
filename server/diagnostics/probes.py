"""The probe child: ``python -m server.diagnostics.probes NAME THREADS RESULT_FILE``.

It sets one framework up as a worker does (its handler's ``setup``), serves the three operations
through the handler's ``load`` and ``predict``, and writes the describer's facts and each
operation's error to RESULT_FILE; oneDNN's verbose lines go to stdout between markers."""

import ctypes
import importlib
import json
import logging
import os
import platform
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from handlers.lifetime import die_with_parent
from server.diagnostics.onednn import MARK
from server.diagnostics.onnx_encoding import onnx_model
from server.shared.environment import fpmath_mode

Info = dict[str, Any]
Array = Any  # a numpy array; numpy is imported inside the functions
PROBED = ("torch", "tensorflow", "onnxruntime")
HANDLERS = {"torch": "pytorch", "tensorflow": "tensorflow", "onnxruntime": "onnx"}  # handlers.frameworks.<name>
OPS = ("linear", "matmul", "conv")  # what served networks spend their time in
SIZE = 256  # matmul size of the probes: big enough for oneDNN/ACL/MLAS to take their GEMM paths
CONV_INPUT, CONV_WEIGHT = (8, 16, 32, 32), (32, 16, 3, 3)  # NCHW input, OIHW weight


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
    from handlers.codecs.media import JSON
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
    ``server.worker.main`` does at start: BF16 fast-math goes on or off there, from the fpmath
    mode of the probe's environment (the workers', ``server.shared.environment``)."""
    module = importlib.import_module(f"handlers.frameworks.{handler}")
    for imported in module.FRAMEWORK.imports:
        importlib.import_module(imported)
    if module.FRAMEWORK.setup is not None:
        module.FRAMEWORK.setup(threads, fpmath_mode())
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



if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] in PROBED and sys.argv[2].isdigit():
        sys.exit(_probe_main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
    sys.exit("usage: python -m server.diagnostics.probes {torch,tensorflow,onnxruntime} THREADS RESULT_FILE")
