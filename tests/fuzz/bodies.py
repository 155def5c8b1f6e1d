"""Hostile request bodies, each made from a real NumPy file by changing the bytes a careless or
hostile client would: the cases of issue 9 (zip bombs, lying headers, broken archives).

Each maker is paired with the exception ``np.load`` raises on it, so a test can first prove the
body really is the case it names (a test that cannot fail is a defect), then send it.
"""

import io
import struct
import zipfile
import zlib

import numpy as np


def npy(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


def npz(compressed: bool = False, **arrays: np.ndarray) -> bytes:
    out = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(out, **arrays)
    return out.getvalue()


def zip_bomb(inflated_bytes: int = 512 * 2**20) -> bytes:
    """A savez_compressed-style archive of one float64 array of zeros ``inflated_bytes`` big:
    about 1/1000 of that on the wire (512 MiB in ~520 kB)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("x.npy", "w", force_zip64=True) as member:
            zeros = np.zeros(2**20 // 8)
            np.lib.format.write_array_header_1_0(member, {"descr": "<f8", "fortran_order": False,
                                                          "shape": (inflated_bytes // 8,)})
            for _ in range(inflated_bytes // 2**20):
                member.write(zeros.tobytes())
    return out.getvalue()


def lying_npy(shape: tuple[int, ...] = (2**40, 4)) -> bytes:
    """An NPY header claiming ``shape`` of float64 over one row of data."""
    return npy(np.zeros((1, 4))).replace(b"(1, 4)", repr(shape).encode(), 1)


def _patch_both_headers(body: bytes, offset: int, fmt: str, value: int) -> bytes:
    """Set a field of the local and of the central-directory header of a one-member zip
    (``offset`` is the field's place in the local header; central headers have it 2 bytes later)."""
    data = bytearray(body)
    local = data.index(b"PK\x03\x04")
    central = data.index(b"PK\x01\x02")
    struct.pack_into(fmt, data, local + offset, value)
    struct.pack_into(fmt, data, central + offset + 2, value)
    return bytes(data)


def bad_crc() -> bytes:
    body = bytearray(npz(x=np.arange(16.0)))
    body[body.rindex(b"PK\x01\x02") - 8] ^= 0xFF  # a data byte of the stored member
    return bytes(body)


def bad_deflate() -> bytes:
    """A deflated member whose compressed stream is garbage."""
    body = bytearray(npz(compressed=True, x=np.arange(1000.0)))
    start = body.index(b"x.npy") + len(b"x.npy")
    body[start : start + 40] = b"\xff" * 40
    return bytes(body)


def unknown_method() -> bytes:
    return _patch_both_headers(npz(x=np.arange(4.0)), 8, "<H", 99)


def encrypted() -> bytes:
    return _patch_both_headers(npz(x=np.arange(4.0)), 6, "<H", 0x1)


def truncated_member() -> bytes:
    """A member whose NPY header and zip headers agree on 1 MiB of data, of which the file
    holds 32 bytes: reading it runs off the end of the archive."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (2**17,)})
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("x.npy", header.getvalue() + np.arange(4.0).tobytes())
    claimed = len(header.getvalue()) + 2**20
    body = _patch_both_headers(out.getvalue(), 18, "<I", claimed)  # compressed size
    return _patch_both_headers(body, 22, "<I", claimed)  # inflated size


def npy_starting_with_pk() -> bytes:
    return b"PK\x03\x04" + b"\x00" * 60


def not_a_zip() -> bytes:
    return b"PK\x03\x04" + b"not a zip archive at all"


# (name, body maker, what np.load raises on it): the cases of issue 9.3, as the server met them.
MALFORMED_NPZ = [
    ("non-zip", not_a_zip, zipfile.BadZipFile),
    ("bad CRC", bad_crc, zipfile.BadZipFile),
    ("broken deflate stream", bad_deflate, zlib.error),
    ("unknown compression", unknown_method, NotImplementedError),
    ("encrypted member", encrypted, RuntimeError),
    ("member past the end", truncated_member, EOFError),
]
