"""Content types: request bodies to arrays, predictions to response bodies.

The same five types the AWS framework toolkits speak (CONTRACT.md §5–6). Media-type parameters
(``; charset=utf-8``) are ignored for matching. NumPy bodies are read with pickling disabled:
a request body is untrusted and must never make the server run code.

Nor may it make the server allocate more than it sent, give or take a stated factor: what a
body decodes to is capped at ``decoded_limit()`` bytes (MODEL_SERVER_MAX_DECODED_FACTOR times
the payload limit, handed to each worker by the front), checked against the sizes a body
declares before anything of that size is allocated. A body over the cap is a 413; one whose
declared sizes do not match its bytes is a 400.
"""

import functools
import io
import math
import struct
import tokenize
import zipfile
import zlib
from typing import IO, Any

import numpy as np
import orjson

from handlers import libsvm, recordio
from handlers.errors import BadInput, NotAcceptable, ServingError, UnsupportedContentType, short

JSON = "application/json"
CSV = "text/csv"
NPY = "application/x-npy"
NPZ = "application/x-npz"
JSONLINES = "application/jsonlines"
LIBSVM, RECORDIO = libsvm.CONTENT_TYPE, recordio.CONTENT_TYPE  # the AWS XGBoost and built-in algorithm types

_ALIASES = {
    "application/x-jsonlines": JSONLINES,
    "application/jsonl": JSONLINES,
    "application/x-ndjson": JSONLINES,
    "text/json": JSON,
    **libsvm.ALIASES,
}

Decoded = Any  # an array, or a dict of named arrays

DECODABLE = (JSON, CSV, NPY, NPZ, JSONLINES, LIBSVM, RECORDIO)
ENCODABLE = (JSON, CSV, NPY, JSONLINES, RECORDIO)


DEFAULT_DECODED_LIMIT = 4 * 6 * 2**20  # the default factor times the default 6 MiB payload limit
_decoded_limit = [DEFAULT_DECODED_LIMIT]


def set_decoded_limit(limit: int) -> None:
    """Set this process's cap on decoded input, in bytes (a worker does it once at start)."""
    _decoded_limit[0] = limit


def decoded_limit() -> int:
    return _decoded_limit[0]


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
    try:
        return decoder(body)
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
        _claim(_string_bytes(rows), np.dtype(np.uint8), decoded_limit(), what)
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
# zip member to any size: every header is checked against the bytes really there and against
# the decoded cap before anything is allocated.
_NPY_VERSIONS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
_CHUNK = 1 << 20
# ``numpy.savez`` writes stored members, ``savez_compressed`` deflated ones; deflate is the one
# method zipfile inflates in bounded steps (bzip2 and LZMA inflate a whole read at once).
_NPZ_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
MAX_NPZ_ARRAYS = 1024
# What zipfile, zlib and the NPY header parser raise on bytes that are not what they claim.
_ARCHIVE_ERRORS = (
    zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, NotImplementedError, RuntimeError, EOFError,
    OSError, ValueError, KeyError, TypeError, SyntaxError, OverflowError, struct.error, tokenize.TokenError,
)


def _npy_header(stream: IO[bytes], what: str) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    """The shape, Fortran order and dtype an NPY header declares; 400 when it is not one."""
    try:
        version = np.lib.format.read_magic(stream)
    except ValueError:
        raise BadInput(f"{what} is not a NumPy .npy array (it does not start with \\x93NUMPY)") from None
    reader = _NPY_VERSIONS.get(version)
    if reader is None:
        raise BadInput(f"{what} is NPY version {version[0]}.{version[1]}; versions 1.0 and 2.0 are read")
    try:
        shape, fortran, dtype = reader(stream)
    except _ARCHIVE_ERRORS + (RecursionError, MemoryError) as err:
        raise BadInput(f"{what} has an unreadable NPY header: {short(err)}") from None
    if dtype.hasobject:
        raise BadInput(f"{what} holds pickled Python objects, which are refused")
    if any(dim < 0 for dim in shape):
        raise BadInput(f"{what} declares a negative dimension: {shape}")
    return shape, fortran, dtype


def _extent(shape: tuple[int, ...]) -> int:
    """The elements of ``shape`` counting an empty axis as one: an array of shape (8, 2**40, 0)
    holds nothing, but written as JSON (or walked as lists) it is 8 * 2**40 empty lists."""
    return math.prod(max(dim, 1) for dim in shape)


def _claim(count: int, dtype: np.dtype[Any], budget: int, what: str) -> None:
    """413 when ``count`` elements of ``dtype`` would pass the decoded cap (a zero-size dtype
    still costs a byte an element, so a huge shape of nothing is refused too)."""
    need = count * max(dtype.itemsize, 1)
    if need > budget:
        raise ServingError(
            f"{what} decodes to {need} bytes, over the {decoded_limit()}-byte cap on decoded input "
            "(MODEL_SERVER_MAX_DECODED_FACTOR times the payload limit)",
            413,
        )


def _shaped(flat: np.ndarray, shape: tuple[int, ...], fortran: bool, what: str) -> np.ndarray:
    try:
        array = flat.reshape(shape[::-1]).transpose() if fortran else flat.reshape(shape)
    except ValueError as err:  # over NumPy's 64 dimensions, say
        raise BadInput(f"{what} declares an impossible shape {shape}: {short(err)}") from None
    if array.dtype.kind == "U" and array.size and not _valid_text(array):
        raise BadInput(f"{what} holds text that is not valid Unicode (surrogates or code points past U+10FFFF)")
    return array


def _valid_text(array: np.ndarray) -> bool:
    """Whether a NumPy string array holds only code points that can be written as UTF-8."""
    codes = np.frombuffer(array.tobytes(), dtype=array.dtype.str[0].replace("|", "=") + "u4")
    return not bool(np.any((codes > 0x10FFFF) | ((codes >= 0xD800) & (codes <= 0xDFFF))))


def _decode_npy(body: bytes) -> np.ndarray:
    if body.startswith(b"PK"):
        raise BadInput("NPY body holds a zip archive; send it as application/x-npz")
    stream = io.BytesIO(body)
    shape, fortran, dtype = _npy_header(stream, "NPY body")
    count = math.prod(shape)
    offset = stream.tell()
    if count * dtype.itemsize > len(body) - offset:
        raise BadInput(
            f"NPY header declares shape {shape} of {dtype} ({count * dtype.itemsize} bytes); "
            f"the body holds {len(body) - offset}"
        )
    _claim(_extent(shape), dtype, decoded_limit(), "NPY body")
    if count == 0 or dtype.itemsize == 0:
        return _shaped(np.empty(count, dtype), shape, fortran, "NPY body")
    flat = np.frombuffer(body, dtype, count=count, offset=offset)
    return _shaped(flat, shape, fortran, "NPY body").copy(order="K")  # writable, and not holding the body


def _read_member(stream: Any, size: int, budget: int, what: str) -> np.ndarray:
    """One NPZ member (``stream``: zipfile's reader of it), read in bounded chunks into an array
    sized by its checked header."""
    shape, fortran, dtype = _npy_header(stream, what)
    count = math.prod(shape)
    _claim(_extent(shape), dtype, budget, what)
    nbytes = count * dtype.itemsize
    if nbytes != size - stream.tell():  # exactly, so that the read ends at the member's end and its CRC is checked
        raise BadInput(f"{what} declares shape {shape} of {dtype} ({nbytes} bytes); it holds {size - stream.tell()}")
    if count == 0 or dtype.itemsize == 0:
        return _shaped(np.empty(count, dtype), shape, fortran, what)
    flat = np.empty(count, dtype)
    view = flat.view(np.uint8).data
    done = 0
    while done < nbytes:
        got = stream.readinto(view[done : done + _CHUNK])
        if not got:
            raise BadInput(f"{what} is truncated: {done} of {nbytes} bytes")
        done += got
    return _shaped(flat, shape, fortran, what)


def _decode_npz(body: bytes) -> Decoded:
    if body.startswith(b"\x93NUMPY"):
        raise BadInput("NPZ body holds a single NPY array; send it as application/x-npy")
    if not body.startswith(b"PK"):
        raise BadInput("NPZ body is not a zip archive")
    # Every central-directory entry starts with this signature: an upper bound on the members,
    # checked before zipfile builds an object per entry.
    if body.count(b"PK\x01\x02") > MAX_NPZ_ARRAYS:
        raise BadInput(f"NPZ body holds more than {MAX_NPZ_ARRAYS} arrays")
    budget = decoded_limit()
    arrays = {}
    try:
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            members = archive.infolist()
            for info in members:
                name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                what = f"NPZ member {name!r}"
                if info.flag_bits & 0x1:
                    raise BadInput(f"{what} is encrypted")
                if info.compress_type not in _NPZ_METHODS:
                    raise BadInput(f"{what} is compressed with zip method {info.compress_type}; "
                                   "numpy.savez and savez_compressed write stored or deflated members")
                with archive.open(info) as stream:
                    array = _read_member(stream, info.file_size, budget, what)
                budget -= max(array.nbytes, array.size)
                arrays[name] = array
    except _ARCHIVE_ERRORS as err:
        cause = f"{type(err).__name__}: {short(err)}" if str(err) else type(err).__name__
        raise BadInput(f"NPZ body is not a readable archive ({cause})") from None
    if not arrays:
        raise BadInput("NPZ body holds no arrays")
    if len(arrays) == 1:
        return next(iter(arrays.values()))
    if set(arrays) in (_SCIPY_COMPRESSED, _SCIPY_COO):
        return _scipy_sparse(arrays)
    return arrays


# What scipy.sparse.save_npz writes (the SageMaker SDK's SparseMatrixSerializer, and what the AWS
# containers' decoder reads back with scipy.sparse.load_npz): a sparse matrix, not named arrays.
_SCIPY_COMPRESSED = {"format", "shape", "data", "indices", "indptr"}
_SCIPY_COO = {"format", "shape", "data", "row", "col"}


def _scipy_sparse(arrays: dict[str, np.ndarray]) -> Any:
    """The matrix of a ``scipy.sparse.save_npz`` body as CSR; 400 naming what is inconsistent, 413
    when its dense extent (what a dense model is given) passes the decoded cap."""
    import scipy.sparse

    kind = arrays["format"].item()
    kind = kind.decode("ascii", "replace") if isinstance(kind, bytes) else str(kind)
    shape = arrays["shape"]
    if shape.shape != (2,) or shape.dtype.kind not in "iu" or bool(np.any(shape < 0)):
        raise BadInput("sparse NPZ body's 'shape' is not two whole numbers >= 0")
    rows, columns = (int(v) for v in shape)
    if columns > libsvm.MAX_INDEX + 1:
        raise BadInput(f"sparse NPZ body declares {columns} columns, over {libsvm.MAX_INDEX + 1}")
    _claim(_extent((rows, columns)), arrays["data"].dtype, decoded_limit(), "sparse NPZ body")
    makers = {"csr": scipy.sparse.csr_matrix, "csc": scipy.sparse.csc_matrix}
    try:
        if kind == "coo" and "row" in arrays:
            matrix = scipy.sparse.coo_matrix((arrays["data"], (arrays["row"], arrays["col"])), shape=(rows, columns))
        elif kind in makers and "indptr" in arrays:
            matrix = makers[kind]((arrays["data"], arrays["indices"], arrays["indptr"]), shape=(rows, columns))
            matrix.check_format(full_check=True)
        else:
            raise BadInput(f"sparse NPZ body's format {kind[:20]!r} is not csr, csc or coo")
        return matrix.tocsr()
    except (ValueError, TypeError, IndexError) as err:
        raise BadInput(f"sparse NPZ body ({kind}) is inconsistent: {short(err)}") from None


_DECODERS = {
    JSON: _decode_json,
    CSV: _decode_csv,
    NPY: _decode_npy,
    NPZ: _decode_npz,
    JSONLINES: _decode_jsonlines,
    LIBSVM: libsvm.decode,
    RECORDIO: recordio.decode,
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


@functools.lru_cache(maxsize=512)  # clients send few distinct Accept headers; each is parsed once
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
