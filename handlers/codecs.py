"""Content types: request bodies to arrays, predictions to response bodies.

The same five types the AWS framework toolkits speak (CONTRACT.md §5–6). Media-type parameters
(``; charset=utf-8``) are ignored for matching. NumPy bodies are read with pickling disabled:
a request body is untrusted and must never make the server run code.
"""

import io
import re

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

DECODABLE = (JSON, CSV, NPY, NPZ, JSONLINES)
ENCODABLE = (JSON, CSV, NPY, JSONLINES)


def media_type(content_type: str | None) -> str:
    """The bare, lower-case media type of a Content-Type value, aliases folded."""
    bare = (content_type or "").split(";", 1)[0].strip().lower()
    return _ALIASES.get(bare, bare)


# ---------------------------------------------------------------------------------- decoding


def decode(body: bytes, content_type: str | None):
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


def _rectangular(rows, what: str) -> np.ndarray:
    try:
        array = np.asarray(rows)
    except ValueError as err:  # ragged nesting
        raise BadInput(f"{what} is not a rectangular array: {err}") from None
    if array.dtype == object:
        raise BadInput(f"{what} is not a rectangular array of numbers or strings")
    return array


def _json_value(body: bytes):
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise BadInput(f"body is not valid JSON: {err}") from None


def _decode_json(body: bytes):
    """An array; a JSON object's ``instances`` or ``inputs`` (TF Serving's shapes) is unwrapped,
    and an object of arrays (``{"input_a": [...], "input_b": [...]}``) gives a dict of arrays."""
    value = _json_value(body)
    if isinstance(value, dict):
        for key in ("instances", "inputs"):
            if key in value:
                value = value[key]
                break
    if isinstance(value, dict):
        if not value:
            raise BadInput("JSON body is an empty object")
        return {name: _rectangular(item, f"JSON field {name!r}") for name, item in value.items()}
    return _rectangular(value, "JSON body")


def jsonlines_records(body: bytes) -> list:
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
    return _rectangular(jsonlines_records(body), "JSON Lines body")


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


def _load_numpy(body: bytes):
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


def _decode_npz(body: bytes):
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


def encode(prediction, kind: str) -> bytes:
    """Encode a prediction as the (already negotiated) media type ``kind``."""
    return _ENCODERS[kind](prediction)


def _plain(prediction):
    """Python data orjson can write: arrays stay arrays, anything else passes through."""
    if isinstance(prediction, (list, tuple)) and prediction and isinstance(prediction[0], np.ndarray):
        return [np.asarray(item) for item in prediction]
    return prediction


_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _json_bytes(value) -> bytes:
    if isinstance(value, np.generic):  # a bare NumPy scalar (int64 from onnxruntime, say)
        value = value.item()
    try:
        return orjson.dumps(value, option=_JSON_OPTIONS)
    except TypeError:
        # Non-contiguous arrays, exotic dtypes, scalars inside lists: go through plain Python values.
        return orjson.dumps(np.asarray(value).tolist(), option=_JSON_OPTIONS)


def _encode_json(prediction) -> bytes:
    return _json_bytes(_plain(prediction))


def _encode_jsonlines(prediction) -> bytes:
    if isinstance(prediction, dict):
        return _json_bytes(prediction) + b"\n"
    rows = np.asarray(prediction)
    if rows.ndim == 0:
        rows = rows.reshape(1)
    return b"".join(_json_bytes(row) + b"\n" for row in rows)


def _encode_csv(prediction) -> bytes:
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


def _encode_npy(prediction) -> bytes:
    out = io.BytesIO()
    np.save(out, np.asarray(prediction), allow_pickle=False)
    return out.getvalue()


_ENCODERS = {JSON: _encode_json, CSV: _encode_csv, NPY: _encode_npy, JSONLINES: _encode_jsonlines}


# ---------------------------------------------------------------------------------- negotiation

_Q = re.compile(r";\s*q\s*=\s*([0-9.]+)")


def negotiate(accept: str | None, default: str, offered=ENCODABLE) -> str:
    """Pick the response media type from an Accept header (q-values honoured, wildcards too).

    A missing header, or ``*/*`` at the top, means ``default`` (SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT)
    when ``offered`` has it, else the first type offered.
    """
    if default not in offered:
        default = offered[0]
    if not accept or not accept.strip():
        return default
    choices = []
    for position, item in enumerate(accept.split(",")):
        kind = media_type(item)
        if not kind:
            continue
        match = _Q.search(item)
        try:
            q = float(match.group(1)) if match else 1.0
        except ValueError:
            q = 0.0
        if q > 0:
            choices.append((-q, position, kind))
    for _, _, kind in sorted(choices):
        if kind == "*/*":
            return default
        if kind.endswith("/*"):
            family = kind[:-1]
            if default.startswith(family):
                return default
            for candidate in offered:
                if candidate.startswith(family):
                    return candidate
        elif kind in offered:
            return kind
    raise NotAcceptable(f"cannot answer as {accept.strip()!r}; available: {', '.join(offered)}")
