"""How requests' inputs merge into one batch and a batch's prediction splits back: axis 0 is rows.

A framework that vectorises declares a ``BatchSpec`` (``Framework.batch``): its ``rows`` turns one
decoded input into ``Rows`` (the input as the framework would feed it, its row count, and a
compatibility key) or None when the input cannot be merged (a dict where the model takes an
array, a bare row a network would answer unbatched, a signature with a fixed batch size...).
Only inputs with equal keys merge: the key holds everything that must agree for the rows to
stand side by side (dtype, the shape after axis 0, the input names, the signature), so a request
with another width or dtype is predicted in a batch of its own rather than breaking the others.
``handlers.batching`` decides when to merge; this module only knows how.
"""

import itertools
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np

from handlers.codecs import as_rows
from handlers.context import Context


class Unsplittable(Exception):
    """The merged prediction does not have one row per input row: the model does not keep axis 0
    as rows, so its requests must be predicted one by one."""


@dataclass(frozen=True)
class Rows:
    """One request's input made ready to merge with others of the same ``key``."""

    key: Hashable
    data: Any
    count: int


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


def arrays(data: Any, min_ndim: int = 1) -> Rows | None:
    """An array, or a dict of arrays sharing their row count, as ``Rows``; None for anything else.

    ``min_ndim`` 2 keeps a bare 1-D row out: a network answers it without a batch axis, which a
    merged batch would add.
    """
    if isinstance(data, np.ndarray):
        if data.ndim < min_ndim:
            return None
        return Rows(("array", data.dtype.str, data.shape[1:]), data, data.shape[0])
    if isinstance(data, dict) and data and all(isinstance(value, np.ndarray) for value in data.values()):
        counts = {value.shape[0] if value.ndim >= min_ndim else None for value in data.values()}
        if len(counts) != 1 or None in counts:
            return None
        key = tuple(sorted((str(name), value.dtype.str, value.shape[1:]) for name, value in data.items()))
        return Rows(("named", key), data, int(counts.pop() or 0))
    return None


def table(data: Any, width: int | None) -> Rows | None:
    """A 2-D table of rows for a model of ``width`` features (scikit-learn, XGBoost): one bare
    row becomes a table of one, as the model's own predict would take it."""
    if not isinstance(data, np.ndarray):
        return None
    rows = as_rows(data, width)
    return Rows(("table", rows.dtype.str, rows.shape[1]), rows, rows.shape[0])


def user_rows(data: Any) -> Rows | None:
    """What a user's batchable ``predict_fn`` may get merged: arrays and lists, axis 0 as rows."""
    if isinstance(data, list):
        return Rows(("list",), data, len(data)) if data else None
    return arrays(data)


@dataclass(frozen=True)
class BatchSpec:
    """How a framework's predict takes several requests at once (``Framework.batch``)."""

    # (model, decoded input, context) -> the input as mergeable rows, or None to predict it alone.
    rows: Callable[[Any, Any, Context], Rows | None]
    # Several ``Rows.data`` of one key -> one input for predict.
    merge: Callable[[list[Any]], Any] = merge
    # (the merged prediction, the requests' row counts) -> one prediction per request.
    split: Callable[[Any, list[int]], list[Any]] = split


USER_SPEC = BatchSpec(rows=lambda model, data, context: user_rows(data))
