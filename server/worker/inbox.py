"""A worker's inbox: the frames it has read from the front and not yet started, and which of them
a free thread takes next, alone or as a group.

Why an inbox rather than one frame per thread: requests that wait hold no thread, so a worker's
few threads merge as many requests to one model as arrive while it is busy (dynamic batching,
``handlers.batching``), and one ``recv`` brings in every frame the front has sent since the last.

A thread asks ``take()`` for work and gets the oldest frame it may start:
- anything but an invoke (ping, load, unload) at once;
- an invoke when no other has begun within ``STALLED_AFTER_SECONDS``: quick predictions run one
  after another rather than contend for the interpreter, and a slow one holds the rest back
  that long at most;
- for a batchable model, besides, only while fewer than its ``concurrency`` groups run, and
  then with every later invoke of that model in the inbox (up to ``max_batch_size`` requests),
  waiting up to ``max_delay_ms`` for more when told to.
When no frame may start, one thread reads the socket (the others wait for what it brings): a
request is run by the thread that read it, with no hand-off, and that thread reads again when it
is done; while it works, one other thread watches and takes over the reading only if the work
stalls, so quick requests cost no thread switch. ``done()`` ends a piece of work; the thread
that calls it takes again (every worker thread does), and so starts what waited on that work,
which is why a reader blocks until frames arrive rather than polling for the end of a group.

Only serving threads wait on the inbox's condition: each ``notify`` wakes one waiter, and one
that does nothing with it (the worker's main thread waiting for the close, as it once did)
swallows the wake-up a watcher or a taker was owed, so that a quick request sat unread for the
whole of a neighbour's slow call. The close has an event of its own, and a group gathering
company passes on a wake-up it cannot use.
"""

import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from server.shared.protocol import PREFIX, Op, parse_header

Frame = tuple[dict[str, Any], bytes]
LARGE = 1 << 20  # a body this big is read straight into its own buffer, not through the shared one
CHUNK = 1 << 16
# An invoke running this long no longer holds the next one back: a slow request (a big input, a
# user's sleep) delays the others by this much at most, while fast ones run one after another
# instead of contending for the interpreter.
STALLED_AFTER_SECONDS = 0.01


class Grouping(Protocol):
    """How a model's invokes may be grouped (``handlers.batching.settings.BatchSettings``)."""

    max_batch_size: int
    max_delay_ms: float
    concurrency: int


@dataclass(eq=False)
class Work:
    """What ``Inbox.take`` hands a thread: one frame, or a group of invokes of one model."""

    frames: list[Frame]
    grouped: str | None = None  # the model whose running groups this counts against
    started: float | None = None  # when an invoke began (monotonic), None for other operations


class FrameReader:
    """Frames off a stream socket, every complete one that has arrived at each read."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buffer = bytearray()

    def read(self, timeout: float | None = None) -> list[Frame] | None:
        """The frames complete so far, waiting for at least one (at most ``timeout`` seconds,
        after which the list may be empty); None once the front has closed the socket."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            frames = self._parse()
            if frames:
                return frames
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                    return []
            if not self._receive():
                return None

    def _receive(self) -> bool:
        """Read what has arrived into the buffer; a large body's rest straight into a buffer of its own."""
        buffer = self.buffer
        if len(buffer) >= PREFIX.size:
            header_len, body_len = PREFIX.unpack_from(buffer)
            size = PREFIX.size + header_len + body_len
            if body_len >= LARGE and len(buffer) < size:
                frame = bytearray(size)
                frame[:len(buffer)] = buffer
                view, got = memoryview(frame), len(buffer)
                while got < size:
                    count = self.sock.recv_into(view[got:])
                    if not count:
                        return False
                    got += count
                self.buffer = frame
                return True
        chunk = self.sock.recv(CHUNK)
        if not chunk:
            return False
        buffer += chunk
        return True

    def _parse(self) -> list[Frame]:
        buffer, frames, at = self.buffer, [], 0
        with memoryview(buffer) as view:  # released before the buffer is cut below
            while len(buffer) - at >= PREFIX.size:
                header_len, body_len = PREFIX.unpack_from(buffer, at)
                start = at + PREFIX.size
                end = start + header_len + body_len
                if len(buffer) < end:
                    break
                frames.append((parse_header(view[start:start + header_len]), bytes(view[start + header_len:end])))
                at = end
        if at:
            del buffer[:at]
        return frames


class Inbox:
    """The frames read and not started, shared by a worker's threads (see the module's doc)."""

    def __init__(self, reader: FrameReader, grouping: Callable[[str], Grouping | None]):
        self.reader = reader
        self.grouping = grouping  # a model's name -> its batching, None when its requests run one by one
        self.frames: deque[Frame] = deque()
        self.changed = threading.Condition()
        self.reading = False  # a thread is reading the socket
        self.closed = False  # the front closed the socket or asked the worker to stop
        self.stopped = threading.Event()  # set with closed, for the thread waiting on it (never the condition)
        self.running: dict[str, int] = {}  # model -> its groups under way
        self.gathering: set[str] = set()  # models whose group waits out max_delay_ms: new frames join it
        self.invoking: dict[Work, float] = {}  # invokes under way -> when each began
        self.watching = False  # a thread waits to take over reading if the youngest invoke stalls

    def take(self) -> Work | None:
        """The next frame to run, or group of invokes of one model; None when the worker is to stop."""
        with self.changed:
            while not self.closed:
                picked = self._pick()
                if picked is not None:
                    work, settings = picked
                    if settings is not None and settings.max_delay_ms > 0 and len(work.frames) < settings.max_batch_size:
                        self._gather(work.frames, settings)
                    if self._startable() or (work.started is not None and not self.reading and not self.watching):
                        self.changed.notify()  # to start what else may start, or to watch this invoke
                    return work
                if self.closed:  # a shutdown frame
                    break
                busy = self._busy_for()
                if self.reading:
                    if busy is not None and self.frames and not self.watching:
                        self._watch(busy)  # frames wait on a quick invoke: look again if it stalls
                    else:
                        self.changed.wait()  # the reader wakes one of us when it brings more than it takes
                elif busy is None:
                    self._fill(None)
                elif self.watching:
                    self.changed.wait()
                else:
                    self._watch(busy)
            return None

    def wait_closed(self) -> None:
        """Block until the front has closed the socket or asked the worker to stop."""
        self.stopped.wait()

    def done(self, work: Work) -> None:
        """Work from ``take`` has been answered: its model may start another group (the thread
        that calls this takes it next, so no other is woken)."""
        if work.started is None:
            return
        key = work.grouped
        with self.changed:
            del self.invoking[work]
            if key is not None:
                self.running[key] -= 1
                if not self.running[key]:
                    del self.running[key]

    # ------------------------------------------------------------------ under the lock

    def _may_start(self, header: dict[str, Any]) -> Grouping | None | Literal[False]:
        """False when ``header``'s frame must wait; else its model's grouping (None: not grouped)."""
        if header["op"] != Op.INVOKE:
            return None
        if self._busy_for() is not None:
            return False  # an invoke has the interpreter: the next one waits for it, or for its stall
        key = header["key"]
        settings = self.grouping(key)
        if settings is None:
            return None
        if key in self.gathering or self.running.get(key, 0) >= settings.concurrency:
            return False
        return settings

    def _startable(self) -> bool:
        return any(frame[0]["op"] == Op.SHUTDOWN or self._may_start(frame[0]) is not False for frame in self.frames)

    def _pick(self) -> tuple[Work, Grouping | None] | None:
        for index, frame in enumerate(self.frames):
            header = frame[0]
            if header["op"] == Op.SHUTDOWN:
                self._close()
                return None
            settings = self._may_start(header)
            if settings is False:
                continue
            del self.frames[index]
            if settings is None:
                return self._begin(Work([frame])), None
            key = header["key"]
            self.running[key] = self.running.get(key, 0) + 1
            group = [frame]
            self._join(group, key, settings.max_batch_size)
            return self._begin(Work(group, key)), settings
        return None

    def _begin(self, work: Work) -> Work:
        if work.frames[0][0]["op"] == Op.INVOKE:
            work.started = self.invoking[work] = time.monotonic()
        return work

    def _busy_for(self) -> float | None:
        """Seconds until the youngest invoke under way counts as stalled; None if none runs or it has."""
        if not self.invoking:
            return None
        left = max(self.invoking.values()) + STALLED_AFTER_SECONDS - time.monotonic()
        return left if left > 0 else None

    def _watch(self, busy: float) -> None:
        """Wait while a quick invoke runs and nobody reads: its thread reads again when it is done,
        which saves waking a reader for every request; if it stalls instead, this thread wakes
        then and reads (one thread watches, the others wait)."""
        self.watching = True
        try:
            self.changed.wait(busy)
        finally:
            self.watching = False

    def _join(self, group: list[Frame], key: str, limit: int) -> None:
        """Move later invokes of ``key`` from the inbox into ``group``, up to ``limit`` frames."""
        if len(group) >= limit or not self.frames:
            return
        kept: deque[Frame] = deque()
        for frame in self.frames:
            header = frame[0]
            if len(group) < limit and header["op"] == Op.INVOKE and header["key"] == key:
                group.append(frame)
            else:
                kept.append(frame)
        self.frames = kept

    def _gather(self, group: list[Frame], settings: Grouping) -> None:
        """Wait up to ``max_delay_ms`` for more invokes of the group's model, reading them in
        ourselves when no other thread is reading."""
        key = group[0][0]["key"]
        deadline = time.monotonic() + settings.max_delay_ms / 1000
        self.gathering.add(key)
        try:
            while len(group) < settings.max_batch_size and not self.closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                if self.reading:
                    self.changed.wait(left)
                    if self._startable():  # woken for a frame of another model: wake a thread that can start it
                        self.changed.notify()
                else:
                    self._fill(left)
                self._join(group, key, settings.max_batch_size)
        finally:
            self.gathering.discard(key)

    def _fill(self, timeout: float | None) -> None:
        """Read from the socket with the lock released; what arrives goes to the inbox."""
        self.reading = True
        self.changed.release()
        try:
            frames = self.reader.read(timeout)
        except OSError:
            frames = None
        finally:
            self.changed.acquire()
            self.reading = False
        if frames is None:
            self._close()
            return
        self.frames.extend(frames)  # this thread looks at them first; it wakes another if there is more

    def _close(self) -> None:
        self.closed = True
        self.stopped.set()
        self.changed.notify_all()
