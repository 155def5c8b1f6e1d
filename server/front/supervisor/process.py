"""Worker processes as the front sees them: start, call, notice death, stop.

A ``WorkerProcess`` is one ``python -m server.worker`` child joined to the front by a socket pair.
Calls are multiplexed over that socket by id, so many requests are in flight at once. When the
child dies, every call in flight fails at once with ``WorkerDied``; whoever owns the worker
decides what to do next (``server.front.supervisor.pool`` restarts it and has its models reloaded).
"""

import asyncio
import itertools
import logging
import mmap
import os
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

from server.front.ledger import Death, Work
from server.front.supervisor.load_permits import LoadPermits
from server.shared import running
from server.shared.paths import PROJECT_ROOT
from server.shared.protocol import HELLO_ID, PREFIX, SHUTDOWN_ID, Op, WorkerConfig, pack, parse_header, unpack_prefix

log = logging.getLogger("workers")
Frame = tuple[dict[str, Any], bytes]  # a reply: header and body
EXIT_GRACE_SECONDS = 1.0  # after the process exits, how long its socket may stay open before it is closed


class WorkerDied(Exception):
    """The worker process ended while a call was in flight. ``started`` is False when the call's
    model was not running in the worker (its frame only waited there): sending it again is safe."""

    def __init__(self, worker: "WorkerProcess", started: bool = True):
        self.worker = worker
        self.started = started
        super().__init__(f"worker {worker.name} died ({worker.exit_description()})")


class CallTimedOut(TimeoutError):
    """A call's answer did not come within its timeout. ``started``: its frame was running in one
    of the worker's threads then (False: it only waited in the inbox, behind busy threads)."""

    def __init__(self, started: bool):
        super().__init__()
        self.started = started


def describe_returncode(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by signal {-code} ({signal.Signals(-code).name})"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class WorkerProcess:
    def __init__(self, config: WorkerConfig, slot: int, env: dict[str, str]):
        self.load_permits = LoadPermits(config.load_threads)  # loads started at once (a slow one frees its slot)
        self.framework = config.framework
        self.slot = slot
        self.name = config.name
        self.config = config
        self.env = env
        self.process: asyncio.subprocess.Process | None = None
        self.pending: dict[int, asyncio.Future[Frame]] = {}
        self.ids = itertools.count(1)
        self.writer: asyncio.StreamWriter | None = None
        self.exited: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self.import_seconds = 0.0
        self.models: set[str] = set()  # names of the models this worker holds (kept by the pool: assign, unassign)
        self.unanswered: set[int] = set()  # ids sent and not answered, timed-out ones included
        self.in_flight: dict[int, Work] = {}  # id -> what it is, of loads and invokes not answered
        self.timed_out: set[int] = set()  # ids of invokes whose caller gave up, until answered
        self.on_timeout: Callable[[WorkerProcess], None] | None = None  # told of each (the pool's renewals)
        self.ping: asyncio.Future[Frame] | None = None  # the answer to its latest ping (the pool's liveness)
        self.death = Death((self.framework, slot))  # what it was running when it died (nothing until then)
        self.running = mmap.mmap(-1, running.ROW.size)  # what its threads run (server.shared.running); made at start
        self.tasks: set[asyncio.Task[None]] = set()  # its reader and exit watcher, held until they end

    def place(self, slot: int) -> None:
        """A standby (``server.front.supervisor.standby``) takes ``slot``: known by its name from now on."""
        self.slot = slot
        self.name = f"{self.framework}-{slot}"
        self.death = Death((self.framework, slot))

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def exit_description(self) -> str:
        return describe_returncode(self.process.returncode if self.process else None)

    async def start(self, timeout: float) -> None:
        """Spawn the child and wait until it has imported its framework."""
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.running, running_fd = running.create(self.config.threads)
        try:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "server.worker", self.config.to_json(), str(child.fileno()), str(os.getpid()),
                str(running_fd), pass_fds=(child.fileno(), running_fd), cwd=PROJECT_ROOT, env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                start_new_session=True,  # its own process group: what user code starts goes with it
            )
        finally:
            child.close()
            os.close(running_fd)
        reader, self.writer = await asyncio.open_unix_connection(sock=parent, limit=2**20)
        hello: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self.pending[HELLO_ID] = hello
        self.tasks = {asyncio.create_task(self._read(reader), name=f"read-{self.name}"),
                      asyncio.create_task(self._watch_exit(), name=f"exit-{self.name}")}
        try:
            header, _ = await asyncio.wait_for(hello, timeout)
        except (TimeoutError, WorkerDied):
            await self.kill()
            raise RuntimeError(f"worker {self.name} did not start ({self.exit_description()})") from None
        self.import_seconds = header.get("import_seconds", 0.0)
        log.info("worker %s started (pid %s, framework import %.2fs)", self.name, self.pid, self.import_seconds)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                header_len, body_len = unpack_prefix(await reader.readexactly(PREFIX.size))
                header = parse_header(await reader.readexactly(header_len))
                body = await reader.readexactly(body_len) if body_len else b""
                self.unanswered.discard(header["id"])
                self.in_flight.pop(header["id"], None)
                self.timed_out.discard(header["id"])
                future = self.pending.pop(header["id"], None)
                if future is not None and not future.done():
                    future.set_result((header, body))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except Exception as err:  # noqa: BLE001 - bytes that are no frame: the worker cannot be trusted
            log.error("worker %s sent a malformed frame (%s: %s): killing it", self.name, type(err).__name__, err)
            await self.kill()
        finally:
            await self._reap()

    async def _watch_exit(self) -> None:
        """End the connection when the process has exited but its socket has not closed: a
        process user code forked still holds a copy of it, and no end of file would ever come,
        so the worker would be dead without anyone knowing. The reader gets a moment to take
        the last answers first."""
        assert self.process is not None
        await self.process.wait()
        try:
            await asyncio.wait_for(asyncio.shield(self.exited), EXIT_GRACE_SECONDS)
        except TimeoutError:
            log.warning("worker %s exited, but a process it started holds its socket: closing it", self.name)
            if self.writer is not None:
                self.writer.transport.abort()

    async def _reap(self) -> None:
        if self.process is not None:
            try:
                await asyncio.wait_for(self.process.wait(), 5)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
            try:
                os.killpg(self.process.pid, signal.SIGKILL)  # pip, or whatever else user code started
            except (ProcessLookupError, PermissionError):
                pass
        # Only what its threads were running: a model with requests merely waiting is innocent.
        started = running.running_ids(self.running) if not self.running.closed else set()
        self.death = Death.of(self.death.slot, self.in_flight, started)
        # Its socket and its running table (an mmap holds a descriptor of its own) go now, not when
        # the last reference to this object does: the ledger and the service keep dead workers a while.
        self.running.close()
        if self.writer is not None:
            self.writer.transport.abort()
        pending, self.pending = self.pending, {}
        for request_id, future in pending.items():
            if not future.done():
                work = self.in_flight.get(request_id)
                future.set_exception(WorkerDied(self, started=self.death.started(work.model if work else None)))
        if not self.exited.done():
            self.exited.set_result(self.process.returncode if self.process else None)

    @property
    def alive(self) -> bool:
        return not self.exited.done()

    def lost_threads(self) -> int:
        """Serving threads stuck in invokes whose callers gave up (each thread's slot of the
        running table holds the id of what it runs; a group counts once, by its first frame)."""
        return len(self.timed_out & running.running_ids(self.running)) if self.timed_out else 0

    def serving_threads(self) -> int:
        """Threads running calls whose callers still wait for the answer."""
        return len(self.pending.keys() & running.running_ids(self.running)) if self.pending else 0

    async def answers_ping(self) -> bool:
        """Whether it answers its latest ping, waiting for that answer if it is due (at most the
        ping's timeout): False when it does not, and is killed for it."""
        ping = self.ping
        if ping is None:
            return self.alive
        await asyncio.wait({ping})
        return not ping.cancelled() and ping.exception() is None

    @property
    def outstanding(self) -> int:
        """Calls waiting for its answer."""
        return len(self.pending)

    async def call(self, header: dict[str, Any], body: bytes = b"", timeout: float | None = None) -> Frame:
        """Send one operation and wait for its answer; raises ``WorkerDied`` or ``TimeoutError``.

        The timeout is a timer on the answer's future rather than ``asyncio.wait_for``, which
        would wrap every request in a task of its own.
        """
        if not self.alive or self.writer is None:
            raise WorkerDied(self)
        request_id = next(self.ids)
        future: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = future
        self.unanswered.add(request_id)
        if header["op"] == Op.PING:
            self.ping = future
        if "key" in header and header["op"] != Op.UNLOAD:
            self.in_flight[request_id] = Work(header["key"], header["op"] == Op.LOAD)
        try:
            self.writer.writelines(pack({**header, "id": request_id}, body))
            if self.writer.transport.get_write_buffer_size() > 2**20:
                await self.writer.drain()
        except (ConnectionError, RuntimeError):  # RuntimeError: the transport closed under us at shutdown
            self.pending.pop(request_id, None)
            raise WorkerDied(self) from None
        timer = asyncio.get_running_loop().call_later(timeout, _expire, future) if timeout else None
        try:
            return await future
        except TimeoutError:
            work = self.in_flight.get(request_id)
            if work is None or work.load:
                raise
            self.timed_out.add(request_id)
            started = request_id in running.running_ids(self.running)
            if self.on_timeout is not None:
                self.on_timeout(self)
            raise CallTimedOut(started) from None
        finally:
            self.pending.pop(request_id, None)  # in_flight keeps a timed-out call until answered: _read drops it
            if timer is not None:
                timer.cancel()

    async def stop(self, grace: float = 5.0) -> None:
        """Ask the child to exit; kill it if it has not within ``grace`` seconds."""
        if self.alive and self.writer is not None:
            try:
                self.writer.writelines(pack({"op": Op.SHUTDOWN, "id": SHUTDOWN_ID}))
                self.writer.close()
            except (ConnectionError, RuntimeError):
                pass
        try:
            await asyncio.wait_for(asyncio.shield(self.exited), grace)
        except TimeoutError:
            await self.kill()

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            try:
                self.process.kill()
            except ProcessLookupError:
                pass
            await self.process.wait()


def _expire(future: asyncio.Future[Frame]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())
