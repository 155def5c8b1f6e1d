"""Request bodies to arrays: one decoder a content type, all behind ``decode``.

JSON, JSON Lines and CSV are parsed here (their values by ``handlers.codecs.records``), NumPy
bodies by ``handlers.codecs.npy``, libsvm and RecordIO by their own modules. What a body
decodes to is capped (``handlers.codecs.limits``): text bodies are sized before ``np.asarray``
makes their strings as wide as the widest.
"""

import io
from typing import Any

import numpy as np

from handlers.codecs import libsvm, npy, recordio
from handlers.codecs.limits import claim, decoded_limit
from handlers.codecs.media import CSV, DECODABLE, JSON, JSONLINES, LIBSVM, NPY, NPZ, RECORDIO, media_type
from handlers.codecs.records import json_value, jsonlines_records
from handlers.errors import BadInput, UnsupportedContentType

Decoded = Any  # an array, or a dict of named arrays


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
    try:
        return libsvm.decode(body, content_type) if kind == LIBSVM else decoder(body)  # its indexing_mode parameter
    except MemoryError:  # the caps make this unlikely; it is still the body's size, not the budget
        raise BadInput(f"the {kind} body decodes to more than can be allocated") from None


def _string_bytes(rows: Any) -> int:
    """What ``np.asarray(rows)`` would allocate if ``rows`` holds strings: NumPy makes every
    element as wide as the longest string (4 bytes a character), and a number among strings
    32 characters wide. (Numbers take at most 8 bytes each, which the body's own few bytes a
    number already bound.)"""
    leaves, widest, texts, numbers, stack = 0, 0, False, False, [rows]
    while stack:
        item = stack.pop()
        if isinstance(item, (list, tuple)):
            stack.extend(item)
            continue
        leaves += 1
        if isinstance(item, (str, bytes)):
            texts, widest = True, max(widest, len(item))
        else:
            numbers = True
    if not texts:
        return leaves * 8
    return leaves * 4 * max(widest, 32 if numbers else 1)


def rectangular(rows: Any, what: str, binary: bool = False, strings: bool = True) -> np.ndarray:
    """``rows`` as one array of numbers or strings; 400 naming ``what`` when ragged or mixed.
    ``binary``: bytes values are allowed too (TF Serving's ``{"b64": ...}`` inputs).
    ``strings``: False when the caller knows there are none (its body has no ``"`` but its keys')."""
    if strings:
        claim(_string_bytes(rows), decoded_limit(), what)
    try:
        array = np.asarray(rows)
    except ValueError as err:  # ragged nesting
        raise BadInput(f"{what} is not a rectangular array: {err}") from None
    if array.dtype == object and not (binary and all(isinstance(item, (bytes, str)) for item in array.flat)):
        raise BadInput(f"{what} is not a rectangular array of numbers or strings")
    return array


def _decode_json(body: bytes) -> Decoded:
    """An array; a JSON object's ``instances`` or ``inputs`` (TF Serving's shapes) is unwrapped,
    and an object of arrays (``{"input_a": [...], "input_b": [...]}``) gives a dict of arrays."""
    value = json_value(body)
    # Quotes beyond the top-level keys' are string values (or nested keys): only then is
    # the walk that sizes strings worth its time.
    strings = body.count(b'"') > (2 * len(value) if isinstance(value, dict) else 0)
    if isinstance(value, dict):
        for key in ("instances", "inputs"):
            if key in value:
                value = value[key]
                break
    if isinstance(value, dict):
        if not value:
            raise BadInput("JSON body is an empty object")
        return {name: rectangular(item, f"JSON field {name!r}", strings=strings) for name, item in value.items()}
    return rectangular(value, "JSON body", strings=strings)


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


def _decode_jsonlines(body: bytes) -> np.ndarray:
    return rectangular(jsonlines_records(body), "JSON Lines body", strings=b'"' in body)


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


# NumPy bodies are read here rather than by ``np.load``, which allocates whatever shape a header
# claims before reading a byte of data (an 8-byte header can ask for petabytes) and inflates a
_DECODERS = {
    JSON: _decode_json,
    CSV: _decode_csv,
    NPY: npy.decode_npy,
    NPZ: npy.decode_npz,
    JSONLINES: _decode_jsonlines,
    LIBSVM: libsvm.decode,
    RECORDIO: recordio.decode,
}
