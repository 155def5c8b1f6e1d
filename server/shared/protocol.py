"""The front↔worker protocol: its frames, its operations and their fields, declared once.

A frame is a fixed prefix (header length: uint32, body length: uint64), a JSON header and an
opaque body. Request and response payloads travel as the body, untouched, so the front never
parses model input; nothing is pickled, so neither side can make the other run code.

Headers are plain dicts on the wire (the invoke path is hot: no objects built per request);
their shapes are the TypedDicts below, which mypy checks on both sides. Every request carries
``op`` and ``id``; every reply carries the request's ``id`` and a ``status``, and an ``error``
(with its ``type``) when the status is not 200.
"""

import struct
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, NotRequired, TypedDict

import orjson

PREFIX = struct.Struct("!IQ")
HELLO_ID = 0  # the id of the worker's first frame, sent unasked once its framework is imported
SHUTDOWN_ID = -1


class Op(StrEnum):
    LOAD = "load"
    UNLOAD = "unload"
    INVOKE = "invoke"
    PING = "ping"
    SHUTDOWN = "shutdown"
    HELLO = "hello"


class Request(TypedDict):
    op: str
    id: int


class LoadRequest(Request):
    key: str  # the model's name
    path: str  # its directory
    copy: NotRequired[int]  # which copy of the name this is (the front's, never reused): what unloads name


class UnloadRequest(Request):
    key: str
    copy: NotRequired[int]  # only this copy of the name: a later one, loaded since it was asked for, stays
    abandon_loads: NotRequired[bool]  # the front gives up on loads of this name (this copy) still running


class InvokeRequest(Request):
    key: str
    headers: dict[str, str]  # lower-case: content-type, accept, x-amzn-*


class Reply(TypedDict):
    id: int
    status: int
    error: NotRequired[str]
    type: NotRequired[str]


class LoadReply(Reply):
    seconds: NotRequired[float]
    memory_bytes: NotRequired[int]  # the worker's RSS growth over the load


class UnloadReply(Reply):
    rss: NotRequired[int]


class InvokeReply(Reply):
    content_type: NotRequired[str]
    headers: NotRequired[dict[str, str]]
    batch: NotRequired[int]  # how many requests shared this one's predict call (handlers.batching)


class PingReply(Reply):
    models: NotRequired[int]


class Hello(TypedDict):
    id: int
    op: str
    pid: int
    import_seconds: float


@dataclass(frozen=True)
class WorkerConfig:
    """What a worker process needs from the front's settings, passed as its first argument."""

    framework: str
    name: str
    threads: int
    load_threads: int
    default_accept: str
    log_level: str
    program: str
    intra_op_threads: int
    packages_root: str
    max_decoded_bytes: int  # what a body may decode to (handlers.codecs.limits), set once at start
    submit_dir: str | None = None  # SAGEMAKER_SUBMIT_DIRECTORY fetched: the code of models without code/
    fpmath_mode: str | None = None  # oneDNN's fpmath mode (Settings.fpmath_mode), for Framework.setup
    batching: dict[str, float] = field(default_factory=dict)  # max_batch_size, max_delay_ms: handlers.batching

    def to_json(self) -> str:
        return orjson.dumps(asdict(self)).decode()

    @classmethod
    def from_json(cls, text: str) -> "WorkerConfig":
        return cls(**orjson.loads(text))


def pack(header: Mapping[str, Any], body: bytes | bytearray | memoryview = b"") -> list[bytes | bytearray | memoryview]:
    """The parts of one frame, to be written with ``writelines`` (no copy of ``body``)."""
    encoded = orjson.dumps(header)
    return [PREFIX.pack(len(encoded), len(body)), encoded, body]


def unpack_prefix(prefix: bytes) -> tuple[int, int]:
    return PREFIX.unpack(prefix)


def parse_header(raw: bytes | memoryview) -> dict[str, Any]:
    header: dict[str, Any] = orjson.loads(raw)
    return header
