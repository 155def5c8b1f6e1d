"""How TensorFlow requests merge (``handlers.batching``): row-format requests to one signature
whose inputs all have a dynamic batch axis."""

import numpy as np

from handlers.batching import merge, rows
from handlers.context import Context
from handlers.frameworks.tensorflow.predict import choose
from handlers.frameworks.tensorflow.rest import Request, Result
from handlers.frameworks.tensorflow.savedmodel import TFModel


def batch_rows(model: TFModel, request, context: Context) -> rows.Rows | None:
    """A row-format request as rows of its signature's inputs, when each has a dynamic batch axis.

    Columnar requests (``{"inputs": ...}``) are predicted alone: their inputs need not share a
    batch axis. The key holds the signature, so requests to different signatures never merge.
    """
    if not isinstance(request, Request) or request.columnar:
        return None
    name, signature = choose(model, request, context)
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


def merge_requests(parts: list) -> Request:
    return Request(merge.merge([part.inputs for part in parts]), signature=parts[0].signature)


def split_result(result: Result, counts: list[int]) -> list[Result]:
    return [Result(outputs, result.names, result.columnar) for outputs in merge.split(result.outputs, counts)]

