"""Finding and loading TensorFlow models: a SavedModel (``saved_model.pb`` at the root, under
``<version>/`` or under ``<name>/<version>/``, highest numeric version first) or a Keras
``*.keras`` file, as ``Signature``s: named, typed inputs in, a dict of named outputs back.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from handlers.base import CODE_DIR, files_in
from handlers.errors import ModelLoadError

DEFAULT_SIGNATURE = "serving_default"
SAVED_MODEL = "saved_model.pb"
KERAS_SUFFIXES = (".keras",)


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
        if named.name == CODE_DIR or named.name.startswith(".") or named.name.isdigit():
            continue
        versions = _versions(named)
        if versions:
            return versions[0][1]
    for path in files_in(model_dir):
        if path.suffix.lower() in KERAS_SUFFIXES:
            return path
    return None


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

