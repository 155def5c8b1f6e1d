"""Frames between the front and its worker processes.

A frame is a fixed prefix (header length: uint32, body length: uint64), a JSON header and an
opaque body. Request and response payloads travel as the body, untouched, so the front never
parses model input; nothing is pickled, so neither side can make the other run code.
"""

import struct

import orjson

PREFIX = struct.Struct("!IQ")


def pack(header: dict, body: bytes | bytearray | memoryview = b"") -> list:
    """The parts of one frame, to be written with ``writelines`` (no copy of ``body``)."""
    encoded = orjson.dumps(header)
    return [PREFIX.pack(len(encoded), len(body)), encoded, body]


def unpack_prefix(prefix: bytes) -> tuple[int, int]:
    return PREFIX.unpack(prefix)


def parse_header(raw: bytes) -> dict:
    return orjson.loads(raw)
