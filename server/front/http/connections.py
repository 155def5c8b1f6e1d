"""Connections that wait on the client are bounded: in time, in header bytes, and in number.

uvicorn's httptools protocol has a keep-alive timeout and nothing else: a connection that never
sends a byte, or sends its headers a byte every few seconds, is held for ever, and so is the
file descriptor under it. With the descriptors spent, ``accept`` fails and ``/ping`` goes
unanswered. This subclass of it adds what is missing, and nothing else:

- a fresh connection gets the keep-alive timeout too (uvicorn arms it only after a response);
- a request's headers must arrive within ``HEADER_TIMEOUT_SECONDS`` of its first byte (408)
  and stay under ``MAX_HEADER_BYTES`` (431); its body within the body timeout (the connection
  is closed: the handler reading it sees the client gone). The clock starts at the first byte a
  waiting connection receives, not when the parser begins a request: the parser skips the empty
  lines a client may send before one, and uvicorn stops the keep-alive timer at any byte, so a
  connection sending only those was held for ever;
- when the process nears its file-descriptor limit, the connection that has waited on its
  client longest is closed to make room, so that a new one (``/ping``) is always accepted.
  Connections whose request is being answered are never closed that way.

Every answer it writes itself is the JSON error body of the rest of the server.
"""

import asyncio
import os
import resource
from http import HTTPStatus
from typing import Any, ClassVar

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from handlers.errors import ServingError

HEADER_TIMEOUT_SECONDS = 10.0
MAX_HEADER_BYTES = 64 * 1024
# Descriptors kept free for what the front needs besides connections (accepting the next one,
# a worker's restart, a model directory's listing).
SPARE_DESCRIPTORS = 24
LINGER_SECONDS = 2.0  # how long a refused client's remaining bytes are read and dropped
BODY_SECONDS_PER_MIB = 1.0  # on top of the header timeout: a body must come at 1 MiB/s at least


def body_timeout(max_payload_bytes: int) -> float:
    """How long a body of up to ``max_payload_bytes`` may take to arrive."""
    return HEADER_TIMEOUT_SECONDS + 50.0 + BODY_SECONDS_PER_MIB * max_payload_bytes / 2**20


def error_bytes(status: int, message: str) -> bytes:
    """A whole HTTP response carrying the server's JSON error body, closing the connection."""
    error = ServingError(message, status)
    body = orjson.dumps(error.body())
    head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")
    return head.encode() + body


def open_descriptors() -> int | None:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


def descriptor_limit() -> int | None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the bounds above; ``guarded_protocol`` makes one per server."""

    body_seconds: ClassVar[float] = 60.0
    # Connections waiting on their client, oldest first (a dict keeps insertion order).
    waiting: ClassVar[dict["GuardedProtocol", None]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read_timer: asyncio.TimerHandle | None = None
        self.header_bytes: int | None = None  # None: not reading a request's headers
        self.read_size = 0  # bytes of the latest read
        self.discarding = False  # answered and closing: what comes in is dropped
        self.awaiting = True  # waiting for a request: its first byte starts the header clock

    # ------------------------------------------------------------ the connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if not self.make_room():
            self.transport.write(error_bytes(503, "the server is at its connection limit"))
            self.transport.close()
            return
        self.waiting[self] = None
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def connection_lost(self, exc: Exception | None) -> None:
        self.waiting.pop(self, None)
        self.stop_timer()
        super().connection_lost(exc)

    def make_room(self) -> bool:
        """Close connections waiting on their clients, oldest first, until the process is
        ``SPARE_DESCRIPTORS`` under its limit; False if it cannot get there."""
        limit = descriptor_limit()
        if limit is None or len(self.connections) < limit // 2:
            return True
        used = open_descriptors() or len(self.connections) + SPARE_DESCRIPTORS
        # A closed transport's descriptor goes on the next turn of the loop: count it gone.
        while used > limit - SPARE_DESCRIPTORS:
            victim = next(iter(self.waiting), None)
            if victim is None:
                return False
            self.waiting.pop(victim)
            victim.stop_timer()
            victim.transport.abort()
            used -= 1
        return True

    # ------------------------------------------------------------ a request's reading

    # Header bytes are counted as they arrive while a request's headers are incomplete (the
    # parser holds a header line it has not finished, however long); headers that begin and end
    # within one read are measured whole, from what the parser made of them, when that read was
    # big enough to hold too many. Nothing is added to a request's path per header line.

    def data_received(self, data: bytes) -> None:
        if self.discarding:
            return
        self.read_size = len(data)
        if self.awaiting and data:
            self.awaiting = False
            self.start_header_timer()
        if self.header_bytes is not None:
            self.header_bytes += len(data)
            if self.header_bytes > MAX_HEADER_BYTES:
                self.refuse_headers()
                return
        super().data_received(data)
        if self.header_bytes == 0 and not self.discarding:  # a request began in this read, its headers unfinished
            self.header_bytes = len(data)
            if self.header_bytes > MAX_HEADER_BYTES:
                self.refuse_headers()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.header_bytes = 0
        self.waiting.setdefault(self, None)
        self.awaiting = False
        if self.read_timer is None:  # else the clock runs from this request's first byte already
            self.start_header_timer()

    def on_headers_complete(self) -> None:
        self.header_bytes = None
        if self.read_size > MAX_HEADER_BYTES and self.header_size() > MAX_HEADER_BYTES:
            self.refuse_headers()
            return
        self.start_timer(self.body_seconds, None, "")
        super().on_headers_complete()

    def header_size(self) -> int:
        """The bytes of the request's target and header lines, as parsed."""
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)  # ": " and CRLF

    def on_body(self, body: bytes) -> None:
        if not self.discarding:
            super().on_body(body)

    def refuse_headers(self) -> None:
        self.refuse(431, f"request headers exceed {MAX_HEADER_BYTES} bytes")

    def on_message_complete(self) -> None:
        if self.discarding:
            return
        self.stop_timer()
        self.waiting.pop(self, None)  # the request is whole: now the server is the one working
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self.waiting[self] = None  # idle again, until the keep-alive timeout
            self.awaiting = self.read_timer is None  # unless a pipelined request is on its way in

    def send_400_response(self, msg: str) -> None:
        self.refuse(400, "malformed HTTP request")

    # ------------------------------------------------------------ timers

    def start_header_timer(self) -> None:
        self.start_timer(HEADER_TIMEOUT_SECONDS, 408, f"request headers took over {HEADER_TIMEOUT_SECONDS:g} s")

    def start_timer(self, seconds: float, status: int | None, message: str) -> None:
        self.stop_timer()
        self.read_timer = self.loop.call_later(seconds, self.timed_out, status, message)

    def stop_timer(self) -> None:
        if self.read_timer is not None:
            self.read_timer.cancel()
            self.read_timer = None

    def timed_out(self, status: int | None, message: str) -> None:
        """Headers late: a 408. A body late: the handler is already reading it, so the
        connection just closes (the handler sees the client gone)."""
        self.read_timer = None
        if status is None:
            self.transport.close()
        else:
            self.refuse(status, message)

    def refuse(self, status: int, message: str) -> None:
        """Answer ``status`` and close. Closing a socket with unread bytes in it makes the
        kernel reset the connection, and the client may lose the answer: so the write side
        is shut first, and what the client still sends is read and dropped for a moment."""
        self.stop_timer()
        self.waiting.pop(self, None)
        if self.transport.is_closing() or self.discarding:
            return
        self.transport.write(error_bytes(status, message))
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()
        self.discarding = True
        self.loop.call_later(LINGER_SECONDS, self.transport.close)


def guarded_protocol(body_seconds: float) -> type[GuardedProtocol]:
    """The protocol class for one server (``body_seconds``: its body timeout), with its own
    record of the connections waiting on their clients."""
    return type("GuardedProtocol", (GuardedProtocol,), {"body_seconds": body_seconds, "waiting": {}})
