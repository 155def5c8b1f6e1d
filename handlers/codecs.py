"""Content types: request bodies to arrays, predictions to response bodies.

The same five types the AWS framework toolkits speak (CONTRACT.md §5–6). Media-type parameters
(``; charset=utf-8``) are ignored for matching. NumPy bodies are read with pickling disabled:
a request body is untrusted and must never make the server run code.
"""

import io
from typing import Any

import numpy as np
import orjson

from handlers.errors import BadInput, NotAcceptable, UnsupportedContentType

JSON = "application/json"
CSV = "text/csv"
NPY = "application/x-npy"
NPZ = "application/x-npz"
JSONLINES = "application/jsonlines"

_ALIASES = {
    "application/x-jsonlines": JSONLINES,
    "application/jsonl": JSONLINES,
    "application/x-ndjson": JSONLINES,
    "text/json": JSON,
}

Decoded = Any  # an array, or a dict of named arrays

DECODABLE = (JSON, CSV, NPY, NPZ, JSONLINES)
ENCODABLE = (JSON, CSV, NPY, JSONLINES)


def media_type(content_type: str | None) -> str:
    """The bare, lower-case media type of a Content-Type value, aliases folded."""
    bare = (content_type or "").split(";", 1)[0].strip().lower()
    return _ALIASES.get(bare, bare)


# ---------------------------------------------------------------------------------- decoding


def decode(body: bytes, content_type: str | None) -> Decoded:
    """Decode a request body into a NumPy array (a dict of arrays for a multi-array NPZ)."""
    kind = media_type(content_type)
    decoder = _DECODERS.get(kind)
    if decoder is None:
        shown = kind or "(none)"
        raise UnsupportedContentType(
            f"Content-Type {shown!r} is not supported; use one of {', '.join(DECODABLE)}"
        )
    if not body:
        raise BadInput("request body is empty")
    return decoder(body)


def rectangular(rows: Any, what: str, binary: bool = False) -> np.ndarray:
    """``rows`` as one array of numbers or strings; 400 naming ``what`` when ragged or mixed.
    ``binary``: bytes values are allowed too (TF Serving's ``{"b64": ...}`` inputs)."""
    try:
        array = np.asarray(rows)
    except ValueError as err:  # ragged nesting
        raise BadInput(f"{what} is not a rectangular array: {err}") from None
    if array.dtype == object and not (binary and all(isinstance(item, (bytes, str)) for item in array.flat)):
        raise BadInput(f"{what} is not a rectangular array of numbers or strings")
    return array


def json_value(body: bytes) -> Any:
    """The JSON value of a body; 400 naming the syntax error. Every JSON decoder starts here."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise BadInput(f"body is not valid JSON: {err}") from None


def _decode_json(body: bytes) -> Decoded:
    """An array; a JSON object's ``instances`` or ``inputs`` (TF Serving's shapes) is unwrapped,
    and an object of arrays (``{"input_a": [...], "input_b": [...]}``) gives a dict of arrays."""
    value = json_value(body)
    if isinstance(value, dict):
        for key in ("instances", "inputs"):
            if key in value:
                value = value[key]
                break
    if isinstance(value, dict):
        if not value:
            raise BadInput("JSON body is an empty object")
        return {name: rectangular(item, f"JSON field {name!r}") for name, item in value.items()}
    return rectangular(value, "JSON body")


def as_rows(data: Any, expected: int | None) -> np.ndarray:
    """A 2-D batch of rows: one row may come bare; the width must match the model's."""
    if isinstance(data, dict):
        raise BadInput("this model takes one array, not several named arrays")
    rows = np.asarray(data)
    if rows.ndim == 1:
        rows = rows.reshape(1, -1)
    if rows.ndim != 2:
        raise BadInput(f"input must be a 2-D array of rows; got shape {rows.shape}")
    if expected is not None and rows.shape[1] != expected:
        raise BadInput(f"input rows have {rows.shape[1]} features; the model expects {expected}")
    return rows


def jsonlines_records(body: bytes) -> list[Any]:
    """The JSON values of a JSON Lines body, blank lines skipped; 400 naming a bad record."""
    records = []
    for number, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(orjson.loads(line))
        except orjson.JSONDecodeError as err:
            raise BadInput(f"JSON Lines record {number} is not valid JSON: {err}") from None
    if not records:
        raise BadInput("JSON Lines body holds no records")
    return records


def _decode_jsonlines(body: bytes) -> np.ndarray:
    return rectangular(jsonlines_records(body), "JSON Lines body")


def _decode_csv(body: bytes) -> np.ndarray:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput("CSV body is not UTF-8 text") from None
    try:
        array = np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as err:
        raise BadInput(f"CSV body is not a table of numbers: {err}") from None
    if array.size == 0:
        raise BadInput("CSV body holds no rows")
    return array


def _load_numpy(body: bytes) -> Any:
    try:
        return np.load(io.BytesIO(body), allow_pickle=False)
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise BadInput("NumPy body holds pickled Python objects, which are refused") from None
        raise BadInput(f"body is not a NumPy file: {err}") from None
    except (OSError, EOFError) as err:
        raise BadInput(f"body is not a NumPy file: {err}") from None


def _decode_npy(body: bytes) -> np.ndarray:
    array = _load_numpy(body)
    if not isinstance(array, np.ndarray):
        raise BadInput("NPY body holds an archive; send it as application/x-npz")
    return array


def _decode_npz(body: bytes) -> Decoded:
    archive = _load_numpy(body)
    if isinstance(archive, np.ndarray):
        raise BadInput("NPZ body holds a single array; send it as application/x-npy")
    with archive:
        try:
            arrays = {name: archive[name] for name in archive.files}
        except ValueError as err:
            if "allow_pickle" in str(err):
                raise BadInput("NPZ body holds pickled Python objects, which are refused") from None
            raise BadInput(f"NPZ body is unreadable: {err}") from None
    if not arrays:
        raise BadInput("NPZ body holds no arrays")
    if len(arrays) == 1:
        return next(iter(arrays.values()))
    return arrays


_DECODERS = {
    JSON: _decode_json,
    CSV: _decode_csv,
    NPY: _decode_npy,
    NPZ: _decode_npz,
    JSONLINES: _decode_jsonlines,
}


# ---------------------------------------------------------------------------------- encoding


def encode(prediction: Any, kind: str) -> bytes:
    """Encode a prediction as the (already negotiated) media type ``kind``."""
    return _ENCODERS[kind](prediction)


def _plain(prediction: Any) -> Any:
    """Python data orjson can write: arrays stay arrays, anything else passes through."""
    if isinstance(prediction, (list, tuple)) and prediction and isinstance(prediction[0], np.ndarray):
        return [np.asarray(item) for item in prediction]
    return prediction


_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _json_bytes(value: Any) -> bytes:
    if isinstance(value, np.generic):  # a bare NumPy scalar (int64 from onnxruntime, say)
        value = value.item()
    try:
        return orjson.dumps(value, option=_JSON_OPTIONS)
    except TypeError:
        # Non-contiguous arrays, exotic dtypes, scalars inside lists: go through plain Python values.
        return orjson.dumps(np.asarray(value).tolist(), option=_JSON_OPTIONS)


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
    out = io.StringIO()
    fmt = "%s" if array.dtype.kind in "OUS" else "%.10g" if array.dtype.kind == "f" else "%d"
    if array.dtype.kind == "b":
        array = array.astype(int)
    np.savetxt(out, array, delimiter=",", fmt=fmt)
    return out.getvalue().encode()


def _encode_npy(prediction: Any) -> bytes:
    out = io.BytesIO()
    np.save(out, np.asarray(prediction), allow_pickle=False)
    return out.getvalue()


_ENCODERS = {JSON: _encode_json, CSV: _encode_csv, NPY: _encode_npy, JSONLINES: _encode_jsonlines}



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



# ---------------------------------------------------------------------------------- negotiation

def _quality(item: str) -> float | None:
    """The q of one Accept element (1 when absent), or None when it is not a number in 0..1."""
    for parameter in item.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value.strip())
            except ValueError:
                return None
            return q if 0.0 <= q <= 1.0 else None
    return 1.0


def _specificity(media_range: str, candidate: str) -> int | None:
    """How specifically ``media_range`` names ``candidate``: 2 exact, 1 ``type/*``, 0 ``*/*``,
    None when it does not match."""
    if media_range == candidate:
        return 2
    if media_range == "*/*":
        return 0
    if media_range.endswith("/*") and candidate.startswith(media_range[:-1]):
        return 1
    return None


def negotiate(accept: str | None, default: str, offered: tuple[str, ...] = ENCODABLE) -> str:
    """Pick the response media type from an Accept header, as RFC 9110 §12.5.1 says.

    Each offered type takes the q of the most specific range that matches it, so
    ``application/json;q=0, */*;q=0.1`` rules JSON out (q=0 means "not acceptable"). The best q
    wins; among equals, the type named more specifically, then the range listed first, then
    ``default`` (SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT): ``*/*`` alone, or no header, is the default.
    """
    if default not in offered:
        default = offered[0]
    if not accept or not accept.strip():
        return default
    ranges = []
    for position, item in enumerate(accept.split(",")):
        kind = media_type(item)
        q = _quality(item)
        if kind and q is not None:
            ranges.append((kind, q, position))
    best = None
    for order, candidate in enumerate(offered):
        matches = [(spec, q, position) for kind, q, position in ranges
                   if (spec := _specificity(kind, candidate)) is not None]
        if not matches:
            continue
        top = max(spec for spec, _, _ in matches)
        q = min(q for spec, q, _ in matches if spec == top)
        position = min(position for spec, _, position in matches if spec == top)
        if q > 0:
            rank = (-q, -top, position, candidate != default, order)
            best = min(best, (rank, candidate)) if best else (rank, candidate)
    if best is None:
        raise NotAcceptable(f"cannot answer as {accept.strip()!r}; available: {', '.join(offered)}")
    return best[1]
