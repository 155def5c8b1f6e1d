"""ONNX: ``model.onnx``, else the one ``*.onnx`` file in the directory, run by ONNX Runtime on CPU.

Inputs: a model with one input takes the request's array; a model with several takes a JSON
object (or NPZ archive) keyed by input name. Each array is cast to the dtype the model declares
for that input, and a bare row gains its batch axis when the model's input has one more dimension.

Outputs: one output is answered as its array. Several are answered as a dict name -> array in the
model's output order for JSON (``{"label": [...], "probabilities": [[...]]}``) and, one record per
row, for JSON Lines. CSV and NPY hold one table, so for them the **first** output is answered:
by convention the model's main one (the label of an skl2onnx classifier, the first head of an
exported network). Choosing it rather than refusing (406) keeps CSV pipelines and batch
transform working on classifiers; a client that wants every output asks for JSON.
"""

import platform
from pathlib import Path

from handlers.base import Framework, outputs_encode, single_file
from handlers.batching import rows
from handlers.describe import short
from handlers.errors import BadInput, ModelLoadError

BF16_FASTMATH = "mlas.enable_gemm_fastmath_arm64_bfloat16"
_threads = 1
_fpmath_mode: str | None = None  # the worker's (WorkerConfig.fpmath_mode), given to setup

# ONNX tensor element types as ``InferenceSession.get_inputs()[i].type`` names them, and the
# NumPy dtype each is fed as (by name: NumPy is imported in the worker, not by the front).
DTYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int8)": "int8",
    "tensor(int16)": "int16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(uint8)": "uint8",
    "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32",
    "tensor(uint64)": "uint64",
    "tensor(bool)": "bool",
    "tensor(string)": "str",
}


def find(model_dir: Path) -> Path | None:
    return single_file(model_dir, "model.onnx", (".onnx",), ".onnx")


def setup(threads: int, fpmath_mode: str | None = None) -> None:
    global _threads, _fpmath_mode
    _threads = max(1, int(threads))
    _fpmath_mode = fpmath_mode


def wants_bf16_fastmath(fpmath_mode: str | None = None, machine: str | None = None) -> bool:
    """Whether sessions get MLAS's bf16 fast math: the fpmath mode (``fpmath_mode``, else the one
    ``setup`` was given) is BF16 and the CPU is arm64."""
    mode = _fpmath_mode if fpmath_mode is None else fpmath_mode
    machine = (platform.machine() if machine is None else machine).lower()
    return (mode or "").strip().upper() == "BF16" and machine in ("aarch64", "arm64")


def session_options(fpmath_mode: str | None = None, machine: str | None = None):
    """The options of every ONNX Runtime session this server creates: the one place to set them.

    Threads: ``intra_op_num_threads`` is the worker's share of the cores (``setup``); requests
    already arrive on several threads of the worker, so one inter-op thread is enough. Spinning
    is off: every session has its own pool, and with many models loaded, idle threads that
    busy-wait (ONNX Runtime's default) would burn the cores the front and other models need
    (about 50 ms of CPU per session created, measured).

    BF16 fast math: ONNX Runtime's CPU kernels (MLAS) do not use oneDNN and never read its
    fpmath mode. On arm64 MLAS has its own switch, the session config entry
    ``mlas.enable_gemm_fastmath_arm64_bfloat16``, set here when the workers' fpmath mode is BF16
    (the Graviton image's default; MODEL_SERVER_BF16_FASTMATH decides): Graviton3/4 then run
    fp32 GEMMs on their bf16 instructions (bfloat16 keeps 8 significant bits of float32's 24).
    On x86 no such option exists in ONNX Runtime's CPU execution provider: ONNX models compute in
    fp32 there whatever the setting, also on CPUs with AVX512-BF16 or AMX.

    ``fpmath_mode`` and ``machine`` default to the worker's own; tests pass them explicitly.
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = _threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    if wants_bf16_fastmath(fpmath_mode, machine):
        options.add_session_config_entry(BF16_FASTMATH, "1")
    return options


def load(artifact: Path):
    import onnxruntime
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

    # InvalidProtobuf, InvalidGraph, NoSuchFile, NotImplemented (an operator or opset this
    # runtime lacks), Fail...: each its own class, all about the file, none a MemoryError.
    refusals = tuple(
        value for value in vars(ort_errors).values() if isinstance(value, type) and issubclass(value, Exception)
    )
    try:
        return onnxruntime.InferenceSession(
            str(artifact), session_options(), providers=["CPUExecutionProvider"]
        )
    except (RuntimeError, ValueError) + refusals as err:
        raise ModelLoadError(f"{artifact.name} cannot be loaded by ONNX Runtime: {short(err)}") from None


def _shape_text(shape) -> str:
    dims = [str(d) if isinstance(d, int) else "N" if i == 0 else "?" for i, d in enumerate(shape)]
    return "(" + ", ".join(dims) + ")"


def _feed(meta, value):
    """One request array made fit for the input ``meta`` (NodeArg): dtype, batch axis, shape."""
    import numpy as np

    array = np.asarray(value)
    dtype = DTYPES.get(meta.type)
    if dtype is None:
        raise BadInput(f"input {meta.name!r} is of type {meta.type}, which requests cannot carry")
    try:
        if dtype == "str":
            array = array.astype(str)
        elif array.dtype != dtype:
            array = array.astype(dtype)
    except (ValueError, TypeError):
        raise BadInput(f"input {meta.name!r} must be {meta.type[7:-1]} values; got {array.dtype}") from None
    shape = meta.shape or []
    if shape and array.ndim == len(shape) - 1:
        array = array.reshape((1,) + array.shape)  # one bare row: add the batch axis
    if shape:
        fixed = all(not isinstance(want, int) or want == got for want, got in zip(shape, array.shape))
        if array.ndim != len(shape) or not fixed:
            raise BadInput(
                f"input {meta.name!r} has shape {tuple(array.shape)}; the model expects {_shape_text(shape)}"
            )
    return array


def feeds(session, data) -> dict:
    inputs = session.get_inputs()
    names = [meta.name for meta in inputs]
    if not isinstance(data, dict):
        if len(inputs) == 1:
            return {names[0]: _feed(inputs[0], data)}
        raise BadInput(f"this model takes {len(inputs)} inputs; send a JSON object (or NPZ) keyed by {', '.join(names)}")
    missing = [name for name in names if name not in data]
    extra = [name for name in data if name not in names]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing input(s): {', '.join(missing)}")
        if extra:
            parts.append(f"unknown input(s): {', '.join(map(str, extra))}")
        raise BadInput(f"{'; '.join(parts)}; the model takes {', '.join(names)}")
    return {meta.name: _feed(meta, data[meta.name]) for meta in inputs}


def predict(session, data, context=None):
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

    fed = feeds(session, data)
    try:
        outputs = session.run(None, fed)
    except (ort_errors.InvalidArgument, ort_errors.Fail, ort_errors.RuntimeException) as err:
        # Dimensions the metadata leaves open (a dynamic axis) are only checked by the kernels.
        raise BadInput(f"the model cannot run on this input: {short(err)}") from None
    if len(outputs) == 1:
        return outputs[0]
    return {meta.name: value for meta, value in zip(session.get_outputs(), outputs)}


def batch_rows(session, data, context=None) -> rows.Rows | None:
    """The request's feeds as rows, when every input's first axis is a dynamic batch axis."""
    if not all(meta.shape and not isinstance(meta.shape[0], int) for meta in session.get_inputs()):
        return None
    return rows.arrays(feeds(session, data))


FRAMEWORK = Framework(
    name="onnx",
    find=find,
    load=load,
    predict=predict,
    encode=outputs_encode,
    # Measured: a 64 MB model took 104 MB of RSS in its session (the weights, pre-packed copies
    # of the GEMM weights, the arena); its requests added little.
    memory_factor=2.0,
    # Measured: a worker after ``import onnxruntime`` (1.31) holds about 65 MB RSS.
    worker_bytes=80 * 2**20,
    imports=("onnxruntime",),
    setup=setup,
    patterns=("model.onnx", "*.onnx"),
    batch=rows.BatchSpec(rows=batch_rows),
)
