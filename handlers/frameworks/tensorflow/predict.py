"""Predicting with a signature: which one a request names, its inputs as typed tensors.

The signature is ``serving_default`` unless the custom attributes name another
(``tfs-signature=NAME``) or the JSON body does (``"signature_name"``); ``tfs-method`` may only be
``predict``. Inputs are cast to the signature's dtypes.
"""

import numpy as np

from handlers.context import Context
from handlers.describe import short
from handlers.errors import BadInput
from handlers.frameworks.tensorflow.rest import Request, Result
from handlers.frameworks.tensorflow.savedmodel import DEFAULT_SIGNATURE, Signature, TFModel


def choose(model: TFModel, request: Request, context: Context) -> tuple[str, Signature]:
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
    _, signature = choose(model, request, context)
    tensors = _named_inputs(request, signature)
    try:
        result = signature.call(tensors)
    except (tf.errors.InvalidArgumentError, ValueError, TypeError) as err:
        raise BadInput(f"the model cannot predict on this input: {short(err)}") from None
    outputs = {name: tensor.numpy() for name, tensor in result.items()}
    return Result(outputs, [name for name in signature.outputs if name in outputs], request.columnar)

