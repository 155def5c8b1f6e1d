"""TensorFlow: a SavedModel (``saved_model.pb`` at the root, under ``<version>/`` or under
``<name>/<version>/``, highest numeric version first) or a Keras ``*.keras`` file.

Requests speak TF Serving's REST shapes, as the AWS TensorFlow container passes them to TF
Serving: ``{"instances": [...]}`` (row format, each instance a value or an object keyed by input
name) is answered ``{"predictions": [...]}``; ``{"inputs": ...}`` (columnar, a value or an object
keyed by input name) is answered ``{"outputs": ...}``. A bare JSON array, CSV, NPY and NPZ are
row-format batches. With several outputs a row-format answer is a list of per-instance objects.

The signature is ``serving_default`` unless the custom attributes name another
(``tfs-signature=NAME``) or the JSON body does (``"signature_name"``); ``tfs-method`` may only be
``predict``. Inputs are cast to the signature's dtypes.
"""

import base64
import logging
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from handlers import codecs
from handlers.base import Framework, default_encode, files_in
from handlers.batching import rows
from handlers.context import Context
from handlers.errors import BadInput, ModelLoadError, NotAcceptable, short

log = logging.getLogger("handlers.frameworks.tensorflow")

DEFAULT_SIGNATURE = "serving_default"
SAVED_MODEL = "saved_model.pb"
KERAS_SUFFIXES = (".keras",)


# ---------------------------------------------------------------------------------- find


def _versions(directory: Path) -> list[tuple[int, Path]]:
    """Numeric subdirectories holding a SavedModel, highest version first."""
    found = []
    try:
        children = list(directory.iterdir())
    except OSError:
        return []
    for child in children:
        if child.name.isdigit() and (child / SAVED_MODEL).is_file():
            found.append((int(child.name), child))
    return sorted(found, key=lambda item: item[0], reverse=True)


def find(model_dir: Path) -> Path | None:
    if (model_dir / SAVED_MODEL).is_file():
        return model_dir
    versions = _versions(model_dir)  # <version>/saved_model.pb
    if versions:
        return versions[0][1]
    try:
        names = sorted(p for p in model_dir.iterdir() if p.is_dir())
    except OSError:
        return None
    for named in names:  # <name>/<version>/saved_model.pb; one model, the first name
        if named.name == "code" or named.name.startswith(".") or named.name.isdigit():
            continue
        versions = _versions(named)
        if versions:
            return versions[0][1]
    for path in files_in(model_dir):
        if path.suffix.lower() in KERAS_SUFFIXES:
            return path
    return None


# ---------------------------------------------------------------------------------- load


@dataclass
class Signature:
    """One callable signature: named, typed inputs in; a dict of named outputs back."""

    inputs: dict  # name -> tf.TensorSpec
    outputs: list[str]  # output names, in answer order
    call: Callable[[dict], dict]  # {name: tf.Tensor} -> {name: tf.Tensor}


@dataclass
class TFModel:
    signatures: dict[str, Signature]
    keep: Any  # the loaded object the signatures' variables belong to


def _saved_model(artifact: Path) -> TFModel:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(artifact))
    signatures = {}
    for name, function in loaded.signatures.items():
        inputs = dict(function.structured_input_signature[1])
        outputs = function.structured_outputs
        names = sorted(outputs) if isinstance(outputs, dict) else ["output_0"]
        signatures[name] = Signature(inputs, names, _keyword_caller(function))
    if not signatures:
        raise ModelLoadError("the SavedModel has no signatures; export it with a serving signature")
    return TFModel(signatures, loaded)


def _keyword_caller(function):
    def call(tensors: dict) -> dict:
        result = function(**tensors)
        return result if isinstance(result, dict) else {"output_0": result}

    return call


def _keras_model(artifact: Path) -> TFModel:
    import keras
    import tensorflow as tf

    model = keras.models.load_model(artifact, compile=False)
    try:
        model_inputs = list(model.inputs)
    except (AttributeError, ValueError):
        model_inputs = []
    if not model_inputs:
        raise ModelLoadError("the Keras model has no defined inputs; build it with keras.Input before saving")
    inputs = {
        tensor.name: tf.TensorSpec(shape=tensor.shape, dtype=tf.as_dtype(tensor.dtype), name=tensor.name)
        for tensor in model_inputs
    }
    order = [tensor.name for tensor in model_inputs]

    @tf.function(input_signature=[inputs])
    def serve(tensors):
        args = tensors[order[0]] if len(order) == 1 else [tensors[name] for name in order]
        result = model(args, training=False)
        if isinstance(result, dict):
            return dict(result)
        if isinstance(result, (list, tuple)):
            return {f"output_{i}": tensor for i, tensor in enumerate(result)}
        return {"output_0": result}

    concrete = serve.get_concrete_function()  # traced once here, not on the first request
    outputs = sorted(concrete.structured_outputs)
    signature = Signature(inputs, outputs, lambda tensors: concrete(tensors))
    return TFModel({DEFAULT_SIGNATURE: signature}, model)


def load(artifact: Path) -> TFModel:
    if artifact.is_file() and artifact.suffix.lower() in KERAS_SUFFIXES:
        return _keras_model(artifact)
    return _saved_model(artifact)


# The workers' oneDNN fpmath mode, normalized by the front (server.shared.environment.worker_environment).
FPMATH_VARIABLE = "DNNL_DEFAULT_FPMATH_MODE"
BF16_REWRITE = "auto_mixed_precision_onednn_bfloat16"


def setup(threads: int) -> None:
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError as err:  # the runtime already started: keep its pools
        log.warning("TensorFlow thread pools already set: %s", err)
    if wants_bf16_rewrite(os.environ.get(FPMATH_VARIABLE, ""), platform.machine(), _cpu_flags()):
        tf.config.optimizer.set_experimental_options({BF16_REWRITE: True})


def wants_bf16_rewrite(mode: str, machine: str, flags: set[str]) -> bool:
    """Whether BF16 fast-math needs TensorFlow's oneDNN bf16 rewrite on this CPU.

    On x86 the fpmath mode does nothing for TensorFlow's matmuls: they call oneDNN's sgemm API
    (``gemm_api`` in the verbose log), which has no fpmath. The grappler pass
    ``auto_mixed_precision_onednn_bfloat16`` instead rewrites each served graph (SavedModel
    signatures and traced Keras calls) to run MatMul, BatchMatMul and Conv2D on bf16 tensors, cast
    back to fp32 at the outputs: oneDNN's ``avx512_core_bf16`` / AMX kernels, measured here. It is
    asked for only where the CPU has bf16 instructions (AVX512-BF16 or AMX-BF16). On arm64
    (Graviton) oneDNN with the Arm Compute Library honours the fpmath mode itself (``gemm:acl``).
    """
    if mode.strip().upper() != "BF16" or machine.lower() not in ("x86_64", "amd64"):
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return set()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return set(line.partition(":")[2].split())


# ---------------------------------------------------------------------------------- decode


@dataclass
class Request:
    """A decoded request: ``columnar`` for ``{"inputs": ...}``, row format otherwise."""

    inputs: Any  # an array, or {input name: array}
    columnar: bool = False
    signature: str | None = None  # from the body's "signature_name"


def _unb64(value):
    """TF Serving's binary values: ``{"b64": "..."}`` becomes bytes, anywhere in the structure."""
    if isinstance(value, dict):
        if set(value) == {"b64"} and isinstance(value["b64"], str):
            try:
                return base64.b64decode(value["b64"], validate=True)
            except ValueError:
                raise BadInput("a \"b64\" value is not valid base64") from None
        return {key: _unb64(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_unb64(item) for item in value]
    return value


def _array(value, what: str) -> np.ndarray:
    return codecs.rectangular(value, what, binary=True)


def _columns(instances: list) -> dict:
    """Row format with named inputs: a list of objects becomes one array per input."""
    names = list(instances[0])
    if not names:
        raise BadInput("instances are empty objects")
    for number, instance in enumerate(instances):
        if not isinstance(instance, dict) or set(instance) != set(names):
            raise BadInput(
                f"instance {number} does not have the same input names as instance 0 ({', '.join(names)})"
            )
    return {name: _array([instance[name] for instance in instances], f"input {name!r}") for name in names}


def _decode_value(value, what: str):
    if isinstance(value, dict):
        if not value:
            raise BadInput(f"{what} is an empty object")
        return {str(name): _array(item, f"input {name!r}") for name, item in value.items()}
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return _columns(value)
    return _array(value, what)


def _decode_json(body: bytes) -> Request:
    value = codecs.json_value(body)
    if b'"b64"' in body:
        value = _unb64(value)
    if not isinstance(value, dict):
        if isinstance(value, list) and not value:
            raise BadInput("JSON body is an empty list")
        return Request(_decode_value(value, "JSON body"))
    signature = value.get("signature_name")
    if signature is not None and not isinstance(signature, str):
        raise BadInput("\"signature_name\" must be a string")
    if "instances" in value and "inputs" in value:
        raise BadInput("send either \"instances\" (row format) or \"inputs\" (columnar), not both")
    if "instances" in value:
        instances = value["instances"]
        if not isinstance(instances, list) or not instances:
            raise BadInput("\"instances\" must be a non-empty list")
        return Request(_decode_value(instances, "\"instances\""), signature=signature)
    if "inputs" in value:
        return Request(_decode_value(value["inputs"], "\"inputs\""), columnar=True, signature=signature)
    extra = [key for key in value if key != "signature_name"]
    if not extra:
        raise BadInput("JSON body holds no \"instances\" or \"inputs\"")
    # An object of arrays keyed by input name, as the shared JSON codec reads it.
    return Request(_decode_value({key: value[key] for key in extra}, "JSON body"), signature=signature)


def _decode_jsonlines(body: bytes) -> Request:
    instances = codecs.jsonlines_records(body)
    if b'"b64"' in body:
        instances = _unb64(instances)
    return Request(_decode_value(instances, "JSON Lines body"))


def decode(body: bytes, content_type: str | None, context: Context) -> Request:
    kind = codecs.media_type(content_type)
    if kind == codecs.JSON and body:
        return _decode_json(body)
    if kind == codecs.JSONLINES and body:
        return _decode_jsonlines(body)
    return Request(codecs.decode(body, content_type))


# ---------------------------------------------------------------------------------- predict


@dataclass
class Result:
    outputs: dict  # name -> np.ndarray
    names: list[str]
    columnar: bool


def _choose(model: TFModel, request: Request, context: Context) -> tuple[str, Signature]:
    method = context.custom_attribute("tfs-method")
    if method and method.lower() != "predict":
        raise BadInput(f"tfs-method={method!r} is not supported; only predict is")
    name = context.custom_attribute("tfs-signature") or request.signature or DEFAULT_SIGNATURE
    signature = model.signatures.get(name)
    if signature is None:
        available = ", ".join(sorted(model.signatures))
        raise BadInput(f"signature {name!r} not found; available: {available}")
    return name, signature


def _tensor(array: np.ndarray, spec, name: str):
    import tensorflow as tf

    shape = spec.shape
    if shape.rank is not None and array.ndim == shape.rank - 1 and shape[1:].is_compatible_with(array.shape):
        array = array[np.newaxis]  # one instance sent bare
    if not shape.is_compatible_with(array.shape):
        raise BadInput(f"input {name!r} has shape {list(array.shape)}; the signature expects {shape}")
    dtype = spec.dtype
    try:
        if dtype == tf.string:
            if array.dtype.kind not in "OSU":
                raise BadInput(f"input {name!r} must hold strings")
            return tf.constant(array, dtype=tf.string)
        if array.dtype.kind in "OSU":
            raise BadInput(f"input {name!r} must hold numbers ({dtype.name}), not strings")
        return tf.constant(array.astype(dtype.as_numpy_dtype, copy=False), dtype=dtype)
    except (TypeError, ValueError) as err:
        raise BadInput(f"input {name!r} cannot be cast to {dtype.name}: {err}") from None


def _named_inputs(request: Request, signature: Signature) -> dict:
    inputs = request.inputs
    expected = list(signature.inputs)
    if not isinstance(inputs, dict):
        if len(expected) != 1:
            raise BadInput(
                f"the signature takes {len(expected)} named inputs ({', '.join(expected)}); "
                "send an object keyed by input name"
            )
        inputs = {expected[0]: inputs}
    missing = [name for name in expected if name not in inputs]
    if missing:
        raise BadInput(f"missing input(s): {', '.join(missing)}; the signature takes {', '.join(expected)}")
    unknown = [name for name in inputs if name not in signature.inputs]
    if unknown:
        raise BadInput(f"unknown input(s): {', '.join(unknown)}; the signature takes {', '.join(expected)}")
    return {name: _tensor(np.asarray(inputs[name]), signature.inputs[name], name) for name in expected}


def predict(model: TFModel, request, context: Context) -> Result:
    import tensorflow as tf

    if not isinstance(request, Request):  # a user's input_fn may hand over plain arrays
        request = Request(request)
    _, signature = _choose(model, request, context)
    tensors = _named_inputs(request, signature)
    try:
        result = signature.call(tensors)
    except (tf.errors.InvalidArgumentError, ValueError, TypeError) as err:
        raise BadInput(f"the model cannot predict on this input: {short(err)}") from None
    outputs = {name: tensor.numpy() for name, tensor in result.items()}
    return Result(outputs, [name for name in signature.outputs if name in outputs], request.columnar)


# ---------------------------------------------------------------------------------- batching


def batch_rows(model: TFModel, request, context: Context) -> rows.Rows | None:
    """A row-format request as rows of its signature's inputs, when each has a dynamic batch axis.

    Columnar requests (``{"inputs": ...}``) are predicted alone: their inputs need not share a
    batch axis. The key holds the signature, so requests to different signatures never merge.
    """
    if not isinstance(request, Request) or request.columnar:
        return None
    name, signature = _choose(model, request, context)
    inputs = request.inputs if isinstance(request.inputs, dict) else {next(iter(signature.inputs)): request.inputs}
    if set(inputs) != set(signature.inputs):
        return None
    arrays = {}
    for input_name, spec in signature.inputs.items():
        shape = spec.shape
        if shape.rank is None or shape.rank == 0 or shape[0] is not None:
            return None
        array = np.asarray(inputs[input_name])
        if array.ndim == shape.rank - 1:
            array = array[np.newaxis]  # one instance sent bare, as ``_tensor`` takes it
        arrays[input_name] = array
    found = rows.arrays(arrays)
    if found is None:
        return None
    return rows.Rows((name, found.key), Request(arrays, signature=name), found.count)


def _merge(parts: list) -> Request:
    return Request(rows.merge([part.inputs for part in parts]), signature=parts[0].signature)


def _split(result: Result, counts: list[int]) -> list[Result]:
    return [Result(outputs, result.names, result.columnar) for outputs in rows.split(result.outputs, counts)]


# ---------------------------------------------------------------------------------- encode


def _plain(array: np.ndarray):
    """What orjson can write: numbers stay an array; strings (TF's bytes) become text."""
    if array.dtype.kind in "OSU":
        return _texts(array.tolist())
    if array.dtype == np.float16 or array.dtype.kind == "c":
        return array.astype(np.float64 if array.dtype.kind != "c" else np.complex128).tolist()
    return np.ascontiguousarray(array)


def _texts(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, list):
        return [_texts(item) for item in value]
    return value


def _rows(result: Result) -> list:
    """Row format with several outputs: one object per instance, as TF Serving answers."""
    sizes = {result.outputs[name].shape[0] if result.outputs[name].ndim else None for name in result.names}
    if len(sizes) != 1 or None in sizes:
        raise BadInput("the outputs do not share a batch size; ask in columnar form ({\"inputs\": ...})")
    columns = {name: _plain(result.outputs[name]) for name in result.names}
    count: int = sizes.pop()  # type: ignore[assignment]  # None was ruled out above
    return [{name: columns[name][i] for name in result.names} for i in range(count)]


_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def encode(result, accept: str | None, context: Context) -> tuple[bytes, str]:
    if not isinstance(result, Result):  # a user's predict_fn returned something of its own
        return default_encode(result, accept, context)
    single = len(result.names) == 1
    offered = codecs.ENCODABLE if single else (codecs.JSON, codecs.JSONLINES)
    default = context.default_accept if context.default_accept in offered else codecs.JSON
    kind = codecs.negotiate(accept, default, offered)
    if kind not in offered:
        raise NotAcceptable(f"this model's answer cannot be written as {kind}; available: {', '.join(offered)}")
    if kind == codecs.JSON:
        if result.columnar:
            value = _plain(result.outputs[result.names[0]]) if single else {
                name: _plain(result.outputs[name]) for name in result.names
            }
            return orjson.dumps({"outputs": value}, option=_JSON_OPTIONS), kind
        value = _plain(result.outputs[result.names[0]]) if single else _rows(result)
        return orjson.dumps({"predictions": value}, option=_JSON_OPTIONS), kind
    if kind == codecs.JSONLINES:
        rows = _plain(result.outputs[result.names[0]]) if single else _rows(result)
        if isinstance(rows, np.ndarray) and rows.ndim == 0:
            rows = rows.reshape(1)
        return b"".join(orjson.dumps(row, option=_JSON_OPTIONS) + b"\n" for row in rows), kind
    return codecs.encode(result.outputs[result.names[0]], kind), kind


# Measured: a SavedModel or .keras file takes 1.05-1.1x its size on disk once loaded (a 150 MB
# SavedModel: 159 MB) plus 3-7 MB of graph per model, whatever its size; a worker with
# TensorFlow imported is ~620 MB of RSS.
FRAMEWORK = Framework(
    name="tensorflow",
    find=find,
    load=load,
    predict=predict,
    decode=decode,
    encode=encode,
    memory_factor=1.5,
    worker_bytes=650 * 2**20,
    imports=("tensorflow",),
    setup=setup,
    patterns=("saved_model.pb", "<name>/<version>/saved_model.pb", "*.keras"),
    batch=rows.BatchSpec(rows=batch_rows, merge=_merge, split=_split),
)
