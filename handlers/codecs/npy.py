"""NumPy bodies (``application/x-npy``, ``application/x-npz``) read without trusting them.

Read here rather than by ``np.load``, which allocates whatever shape a header claims before
reading a byte of data (an 8-byte header can ask for petabytes) and inflates a zip member to any
size: every header is checked against the bytes really there and against the decoded cap
(``handlers.codecs.limits``) before anything is allocated. Pickling is refused: a request body is
untrusted and must never make the server run code. A body over the cap is a 413; one whose
declared sizes do not match its bytes is a 400.
"""

import io
import math
import struct
import tokenize
import zipfile
import zlib
from typing import IO, Any

import numpy as np

from handlers.codecs import libsvm
from handlers.codecs.limits import claim, decoded_limit
from handlers.describe import short
from handlers.errors import BadInput

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
    claim(count * max(dtype.itemsize, 1), budget, what)


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


def decode_npy(body: bytes) -> np.ndarray:
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


def decode_npz(body: bytes) -> Any:
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

