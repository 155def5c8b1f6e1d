"""Mergeable rows: what a framework declares (``BatchSpec``) and the helpers it builds one from.

A framework that vectorises declares a ``BatchSpec`` (``Framework.batch``): its ``rows`` turns one
decoded input into ``Rows`` (the input as the framework would feed it, its row count, and a
compatibility key) or None when the input cannot be merged (a dict where the model takes an
array, a bare row a network would answer unbatched, a signature with a fixed batch size...).
Only inputs with equal keys merge: the key holds everything that must agree for the rows to
stand side by side (dtype, the shape after axis 0, the input names, the signature), so a request
with another width or dtype is predicted in a batch of its own rather than breaking the others.
``handlers.batching.group`` decides when to merge, ``handlers.batching.merge`` how.

The front imports this module (through the handler modules, to detect models): NumPy is imported
by the helpers when they run, in the worker.
"""

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from handlers.context import Context
from handlers.deferred import deferred


@dataclass(frozen=True)
class Rows:
    """One request's input made ready to merge with others of the same ``key``."""

    key: Hashable
    data: Any
    count: int


def arrays(data: Any, min_ndim: int = 1) -> Rows | None:
    """An array, or a dict of arrays sharing their row count, as ``Rows``; None for anything else.

    ``min_ndim`` 2 keeps a bare 1-D row out: a network answers it without a batch axis, which a
    merged batch would add.
    """
    import numpy as np

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
    import numpy as np

    from handlers.codecs.decode import as_rows

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
    merge: Callable[[list[Any]], Any] = deferred("handlers.batching.merge", "merge")
    # (the merged prediction, the requests' row counts) -> one prediction per request.
    split: Callable[[Any, list[int]], list[Any]] = deferred("handlers.batching.merge", "split")


USER_SPEC = BatchSpec(rows=lambda model, data, context: user_rows(data))
