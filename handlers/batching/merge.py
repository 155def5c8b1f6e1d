"""Merging a group's inputs into one and splitting its prediction back: axis 0 is rows.

``handlers.batching.group`` calls these (as a framework's ``BatchSpec.merge`` and ``.split``
unless it declares its own) on the rows ``handlers.batching.rows`` made of each request.
"""

import itertools
from typing import Any

import numpy as np


class Unsplittable(Exception):
    """The merged prediction does not have one row per input row: the model does not keep axis 0
    as rows, so its requests must be predicted one by one."""


def merge(parts: list[Any]) -> Any:
    """Inputs of one key as one: arrays concatenated along axis 0, named arrays name by name."""
    first = parts[0]
    if isinstance(first, dict):
        return {name: np.concatenate([part[name] for part in parts], axis=0) for name in first}
    if isinstance(first, list):
        return [row for part in parts for row in part]
    return np.concatenate(parts, axis=0)


def _slices(counts: list[int]) -> list[slice]:
    """Where each request's rows lie in the merged rows (plain slices: views, and cheaper than ``np.split``)."""
    ends = list(itertools.accumulate(counts))
    return [slice(end - count, end) for count, end in zip(counts, ends)]


def split(prediction: Any, counts: list[int]) -> list[Any]:
    """A merged prediction cut back into one per request, ``counts[i]`` rows each.

    Arrays and row lists are cut along axis 0; a dict (named outputs) and a list of arrays (a
    network's several outputs) are cut output by output. Anything else, or an output whose
    length is not the total of ``counts``, raises ``Unsplittable``.
    """
    total = sum(counts)
    if isinstance(prediction, np.ndarray):
        if prediction.ndim == 0 or prediction.shape[0] != total:
            raise Unsplittable(f"an output of shape {prediction.shape} for {total} rows")
        return [prediction[part] for part in _slices(counts)]
    if isinstance(prediction, dict):
        columns = {name: split(value, counts) for name, value in prediction.items()}
        return [{name: parts[i] for name, parts in columns.items()} for i in range(len(counts))]
    if isinstance(prediction, (list, tuple)) and prediction and all(isinstance(item, np.ndarray) for item in prediction):
        outputs = [split(item, counts) for item in prediction]
        return [[parts[i] for parts in outputs] for i in range(len(counts))]
    if isinstance(prediction, list):
        if len(prediction) != total:
            raise Unsplittable(f"a list of {len(prediction)} items for {total} rows")
        return [prediction[part] for part in _slices(counts)]
    raise Unsplittable(f"a {type(prediction).__name__} prediction")
