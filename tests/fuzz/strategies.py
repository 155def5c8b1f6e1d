"""Hypothesis strategies for request bodies of every content type the server decodes.

Each type gets three kinds of body: well-formed ones (real arrays written the way clients
write them), the same bytes broken (cut short, bytes flipped, headers rewritten to lie about
sizes, zip fields patched) and plain noise. A body is drawn with its Content-Type.
"""

import io
import json
import struct
import zipfile

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from handlers.codecs.media import CSV, JSON, JSONLINES, LIBSVM, NPY, NPZ, RECORDIO

TYPES = (JSON, CSV, NPY, NPZ, JSONLINES, LIBSVM, RECORDIO)

_DTYPES = st.one_of(
    hnp.boolean_dtypes(), hnp.integer_dtypes(), hnp.unsigned_integer_dtypes(), hnp.floating_dtypes(),
    hnp.complex_number_dtypes(), hnp.unicode_string_dtypes(max_len=8), hnp.byte_string_dtypes(max_len=8),
    hnp.datetime64_dtypes(), st.just(np.dtype([("a", "<f4"), ("b", "<i2")])),
)
arrays = _DTYPES.flatmap(lambda dtype: hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=3, max_side=6)))

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
json_values = st.recursive(
    _scalars, lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=40,
)
_rows = st.lists(st.lists(st.floats(-1e6, 1e6) | st.integers(-1000, 1000), min_size=1, max_size=6), min_size=1, max_size=6)
_wrapped = st.one_of(
    _rows, st.builds(lambda r: {"instances": r}, _rows), st.builds(lambda r: {"inputs": r}, _rows),
    st.dictionaries(st.sampled_from(["a", "b", "input_1"]), _rows, min_size=1, max_size=3),
    st.lists(st.text(max_size=20), min_size=1, max_size=8),
)


def _npy_bytes(array: np.ndarray, fortran: bool) -> bytes:
    out = io.BytesIO()
    np.save(out, np.asfortranarray(array) if fortran and array.ndim > 1 else array, allow_pickle=False)
    return out.getvalue()


def _npz_bytes(named: dict, compressed: bool) -> bytes:
    out = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(out, **named)
    return out.getvalue()


_shapes = st.lists(st.one_of(st.integers(0, 8), st.integers(-3, 2**62), st.just(2**40)), max_size=4).map(tuple)
_descrs = st.sampled_from(["<f8", "|b1", "<i4", "<U3", "|S0", "|V0", "|O", "<c16", "<M8[s]", [("a", "<f4")], "bogus", 3])


def npy_claiming(descr: object, fortran: bool, shape: object, data: bytes) -> bytes:
    """A well-formed NPY 1.0 header declaring whatever it is given, then ``data``."""
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": descr, "fortran_order": fortran, "shape": shape})
    return out.getvalue() + data


@st.composite
def lying_header(draw, body: bytes) -> bytes:
    """``body`` (an NPY file) with its header replaced by one drawn at will over the same data."""
    try:
        stream = io.BytesIO(body)
        np.lib.format.read_magic(stream)
        np.lib.format.read_array_header_1_0(stream)
    except ValueError:
        return body
    data = body[stream.tell():]
    return npy_claiming(draw(_descrs), draw(st.booleans()), draw(_shapes), data)


@st.composite
def broken(draw, body: bytes) -> bytes:
    """``body`` cut short, with bytes flipped, or with a zip field patched."""
    how = draw(st.sampled_from(["cut", "flip", "zip-field", "as-is"]))
    if how == "cut" and body:
        return body[: draw(st.integers(0, len(body) - 1))]
    if how == "flip" and body:
        data = bytearray(body)
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)
    if how == "zip-field" and b"PK\x03\x04" in body:
        data = bytearray(body)
        local = data.index(b"PK\x03\x04")
        offset, fmt = draw(st.sampled_from([(6, "<H"), (8, "<H"), (14, "<I"), (18, "<I"), (22, "<I"), (26, "<H")]))
        struct.pack_into(fmt, data, local + offset, draw(st.integers(0, 2 ** (8 * struct.calcsize(fmt)) - 1)))
        return bytes(data)
    return body


def _csv_text(rows: list) -> bytes:
    return "\n".join(",".join(str(v) for v in row) for row in rows).encode()


_npy = st.builds(_npy_bytes, arrays, st.booleans())
_npz = st.builds(_npz_bytes, st.dictionaries(st.sampled_from(["x", "y", "z"]), arrays, min_size=1, max_size=3), st.booleans())
_noise = st.binary(max_size=2048)

BODIES = {
    JSON: st.one_of(
        _wrapped.map(lambda v: json.dumps(v).encode()), json_values.map(lambda v: json.dumps(v).encode()),
        st.text(alphabet='[]{},:"0123456789.eE-+ntrufalse\\u', max_size=200).map(str.encode), _noise,
    ),
    CSV: st.one_of(
        _rows.map(_csv_text), st.text(alphabet="0123456789.,-+eEnaif \t\r\n\"'", max_size=300).map(str.encode), _noise,
    ),
    JSONLINES: st.one_of(
        _rows.map(lambda rows: "\n".join(json.dumps(r) for r in rows).encode()),
        st.lists(json_values, max_size=6).map(lambda vs: "\n".join(json.dumps(v) for v in vs).encode()), _noise,
    ),
    NPY: st.one_of(_npy, _npy.flatmap(lying_header), _npy.flatmap(broken), _noise, st.just(b"PK\x03\x04" + b"\0" * 40)),
    NPZ: st.one_of(
        _npz, _npz.flatmap(broken), _noise, st.sampled_from([b"PK\x03\x04", b"PK\x05\x06" + b"\0" * 18]),
        st.deferred(lambda: st.builds(lying_npz, _shapes, st.booleans())),
    ),
    LIBSVM: st.one_of(
        st.lists(st.builds(lambda label, pairs: " ".join([str(label)] + [f"{i}:{v}" for i, v in pairs]),
                           st.integers(-2, 2), st.lists(st.tuples(st.integers(-1, 2**40), st.floats(-10, 10)), max_size=5)),
                 max_size=6).map(lambda lines: "\n".join(lines).encode()),
        st.text(alphabet="0123456789:. \n-+eE#", max_size=200).map(str.encode), _noise,
    ),
    RECORDIO: st.one_of(_noise, st.binary(max_size=64).map(lambda b: struct.pack("<I", 0xCED7230A) + b)),
}

bodies = st.sampled_from(TYPES).flatmap(lambda kind: st.tuples(st.just(kind), BODIES[kind]))


def lying_npz(shape: tuple, compressed: bool) -> bytes:
    """An NPZ whose one member's NPY header claims ``shape`` of float64 over 24 bytes."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED) as archive:
        archive.writestr("x.npy", npy_claiming("<f8", False, shape, np.zeros(3).tobytes()))
    return out.getvalue()
