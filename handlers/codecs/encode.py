"""Predictions to response bodies, as the (already negotiated, ``handlers.codecs.media``) type.

``encode`` writes one prediction; ``encode_outputs`` that of a network that may answer several
outputs (a dict, or a list of arrays), whole as JSON, one record per row as JSON Lines, and its
first output for CSV and NPY.
"""

import io
from typing import Any

import numpy as np
import orjson

from handlers.codecs import recordio
from handlers.codecs.media import CSV, JSON, JSONLINES, NPY, RECORDIO
from handlers.errors import NotAcceptable, ServingError


def encode(prediction: Any, kind: str) -> bytes:
    """Encode a prediction as the (already negotiated) media type ``kind``."""
    return _ENCODERS[kind](prediction)

def _plain(prediction: Any) -> Any:
    """Python data orjson can write: arrays stay arrays, anything else passes through."""
    if isinstance(prediction, (list, tuple)) and prediction and isinstance(prediction[0], np.ndarray):
        return [np.asarray(item) for item in prediction]
    return prediction

_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS

def _json_default(value: Any) -> Any:
    """What orjson cannot write itself, as plain Python: arrays of strings or exotic dtypes,
    non-contiguous arrays, NumPy scalars inside lists or dicts, bytes (as UTF-8 text)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "backslashreplace")
    raise NotAcceptable(f"a prediction holding {type(value).__name__} values cannot be written as JSON")

def _json_bytes(value: Any) -> bytes:
    if isinstance(value, np.generic):  # a bare NumPy scalar (int64 from onnxruntime, say)
        value = value.item()
    # orjson refuses some arrays outright (non-native byte order, some dtypes) rather than
    # asking ``default``; without its NumPy option every array goes through ``default``.
    for options in (_JSON_OPTIONS, orjson.OPT_NON_STR_KEYS):
        try:
            return orjson.dumps(value, default=_json_default, option=options)
        except TypeError as err:
            if isinstance(err.__cause__, ServingError):
                raise err.__cause__ from None
            failure = err
    raise failure

def _encode_json(prediction: Any) -> bytes:
    return _json_bytes(_plain(prediction))

def _encode_jsonlines(prediction: Any) -> bytes:
    if isinstance(prediction, dict):
        return _json_bytes(prediction) + b"\n"
    rows = np.asarray(prediction)
    if rows.ndim == 0:
        rows = rows.reshape(1)
    return b"".join(_json_bytes(row) + b"\n" for row in rows)

def _encode_csv(prediction: Any) -> bytes:
    array = np.asarray(prediction)
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim > 2:
        raise NotAcceptable(f"a prediction of shape {array.shape} cannot be written as CSV")
    if array.dtype.names:
        raise NotAcceptable("a prediction of named fields cannot be written as CSV")
    out = io.StringIO()
    fmt = {"f": "%.10g", "i": "%d", "u": "%d"}.get(array.dtype.kind, "%s")  # dates, complex, text: as str()
    if array.dtype.kind == "b":
        array = array.astype(int)
        fmt = "%d"
    np.savetxt(out, array, delimiter=",", fmt=fmt)
    return out.getvalue().encode()

def _encode_npy(prediction: Any) -> bytes:
    array = np.asarray(prediction)
    if array.dtype.hasobject:  # a dict, or mixed Python values: NPY without pickle cannot hold them
        raise NotAcceptable(f"a prediction of {type(prediction).__name__} cannot be written as NPY")
    out = io.BytesIO()
    np.save(out, array, allow_pickle=False)
    return out.getvalue()

_ENCODERS = {JSON: _encode_json, CSV: _encode_csv, NPY: _encode_npy, JSONLINES: _encode_jsonlines, RECORDIO: recordio.encode}

def _rows(value: Any) -> int | None:
    """The number of rows of one output, or None when it has no leading axis."""
    if isinstance(value, list):
        return len(value)
    value = np.asarray(value)
    return value.shape[0] if value.ndim else None

def _per_row(outputs: Any) -> list[Any] | None:
    """JSON Lines records, one per row (``{name: row}`` for a dict, ``[row, row]`` for a list),
    when every output has the same number of rows; else None."""
    items = list(outputs.items()) if isinstance(outputs, dict) else list(enumerate(outputs))
    lengths = {_rows(value) for _, value in items}
    count = lengths.pop() if len(lengths) == 1 else None
    if count is None:
        return None
    if isinstance(outputs, dict):
        return [{name: _item(value[i]) for name, value in items} for i in range(count)]
    return [[_item(value[i]) for _, value in items] for i in range(count)]

def _item(value: Any) -> Any:
    # A row of a 1-D output is a NumPy scalar, which orjson does not write (int64 as longlong).
    return value.item() if isinstance(value, np.generic) else value

def several_outputs(prediction: Any) -> bool:
    return isinstance(prediction, dict) or (
        isinstance(prediction, (list, tuple)) and len(prediction) > 1
        and all(isinstance(item, np.ndarray) for item in prediction)
    )

def encode_outputs(prediction: Any, kind: str) -> bytes:
    """Like ``encode``, but a prediction of several outputs (a dict, or a list of arrays from a
    network with several heads) is written whole as JSON, one record per row as JSON Lines, and
    as its first output for CSV and NPY (by convention the model's main one)."""
    if several_outputs(prediction):
        if kind in (CSV, NPY):
            first = next(iter(prediction.values())) if isinstance(prediction, dict) else prediction[0]
            return encode(first, kind)
        if kind == JSONLINES:
            rows = _per_row(prediction)
            if rows is not None:
                return b"".join(encode(row, JSON) + b"\n" for row in rows)
            return encode(prediction, JSON) + b"\n"
        if isinstance(prediction, tuple):
            prediction = list(prediction)
    return encode(prediction, kind)

