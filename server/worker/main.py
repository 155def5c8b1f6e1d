"""A worker process: holds the models of one framework and runs their requests.

Started by the front as ``python -m server.worker CONFIG_JSON FD FRONT_PID``. It imports its framework
once, then serves frames from the socket ``FD`` on a few threads (NumPy and the frameworks
release the GIL in their kernels). The frames read and not yet started wait in an inbox
(``server.worker.inbox``), from which a free thread takes the next frame, or every waiting invoke of
one batchable model as one group, and answers it; whoever reads a lone request runs it itself,
with no hand-off to another thread. Each load runs on a thread of its own, so a slow
(or never-ending) load holds up neither predictions nor other loads, and unloads have a thread
of their own. A load the front has given up on (its timeout, or an unload of the model while it
loads) is abandoned: it is answered at once, and if it ever finishes, its model is dropped.

Loads and unloads name the copy of the model they are about (``copy``, the front's number for
one load of a name): loads run on threads of their own and unloads queue on theirs, so an unload
of a name can run after the name was loaded again, and must then leave the new copy alone; a
load of an earlier copy that ends after a later one was put in place is dropped.

It never outlives the front: it exits when the socket closes, and the kernel kills it
(``PR_SET_PDEATHSIG``) if the front dies while every thread is busy. It leads a process group
of its own, which the front kills when the worker ends, so that whatever user code started
(pip included) goes with it.
"""

import ctypes
import gc
import importlib
import logging
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from handlers import serving
from handlers.codecs.limits import set_decoded_limit
from handlers.describe import describe
from handlers.errors import ModelNotLoaded, ServingError
from handlers.lifetime import die_with_parent
from server.shared.logs import setup_logging
from server.shared.protocol import (
    HELLO_ID,
    Hello,
    InvokeReply,
    InvokeRequest,
    LoadReply,
    LoadRequest,
    Op,
    PingReply,
    Reply,
    Request,
    UnloadReply,
    UnloadRequest,
    WorkerConfig,
    pack,
)
from server.shared.rss import rss
from server.shared.running import RunningTable
from server.worker.inbox import FrameReader, Inbox

log = logging.getLogger("worker")
Runner = Callable[[Any, bytes], tuple[Any, bytes]]


_LIBC: ctypes.CDLL | None
try:
    _LIBC = ctypes.CDLL("libc.so.6")
except OSError:  # not glibc
    _LIBC = None


def _release_memory() -> None:
    """Collect the model's reference cycles and hand freed heap pages back to the OS, so an
    unload shows in RSS. Cheap because the framework's own objects were frozen out of the
    collector's sight at start (``gc.freeze``): only what models allocated is traversed."""
    gc.collect()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def die_with_the_front(front_pid: int) -> None:
    """Ask the kernel for SIGKILL when the front dies, even if no thread is free to notice.

    The front's pid is passed in rather than guessed: in a container the front is PID 1, so a
    parent of 1 does not mean it has gone."""
    die_with_parent()
    if os.getppid() != front_pid:  # the front died before the request took effect
        os._exit(1)


class Worker:
    def __init__(self, config: WorkerConfig, sock: socket.socket, running: RunningTable):
        self.config = config
        self.sock = sock
        self.running = running
        self.inbox = Inbox(FrameReader(sock), self.grouping)
        self.write_lock = threading.Lock()
        self.models: dict[str, serving.ServedModel] = {}
        self.models_lock = threading.Lock()
        self.copies: dict[str, int | None] = {}  # name -> which copy of it models holds
        self.loading: dict[int, tuple[str, int | None]] = {}  # id of a load running -> (name, copy)
        self.answered: set[int] = set()  # ids of loads abandoned and answered: their own end says nothing
        # Copies abandoned, also before their load began (the two frames cross on different threads).
        self.abandoned: dict[int, None] = {}
        self.unloads = ThreadPoolExecutor(1, thread_name_prefix="unload")
        # op -> how to run it: on the reading thread itself, a thread of its own, the unload thread
        self.dispatch: dict[str, tuple[Runner, Callable[[Callable[[], None]], object] | None]] = {
            Op.LOAD: (self.load, _own_thread),
            Op.UNLOAD: (self.unload, self.unloads.submit),
            Op.PING: (self.ping, None),
        }

    # -------------------------------------------------------------------- frames

    def send(self, header: Mapping[str, Any], body: bytes = b"") -> None:
        self.send_all([(header, body)])

    def send_all(self, frames: list[tuple[Mapping[str, Any], bytes]]) -> None:
        """Write frames in one system call when they are small, each part as it is when not. A
        reply that cannot be written (user code put bytes in a header, say) goes as a 500."""
        parts = []
        for header, body in frames:
            try:
                if not isinstance(body, (bytes, bytearray, memoryview)):
                    raise TypeError(f"the body is {type(body).__name__}, not bytes")
                parts.extend(pack(header, body))
            except (TypeError, ValueError) as err:
                log.error("the reply to frame %s could not be written: %s", header.get("id"), err)
                unwritable = ServingError(f"the reply could not be written: {err}", 500)
                parts.extend(pack({"id": header["id"], "status": 500, "error": unwritable.message, "type": unwritable.kind}))
        with self.write_lock:
            if sum(len(part) for part in parts) <= 1 << 16:
                self.sock.sendall(b"".join(parts))
            else:
                for part in parts:
                    self.sock.sendall(part)

    def grouping(self, key: str) -> Any:
        """The model's batching (``Inbox`` groups its invokes by it), None when it has none."""
        served = self.models.get(key)
        return None if served is None else served.batch_settings

    # -------------------------------------------------------------------- operations

    def load(self, header: LoadRequest, body: bytes) -> tuple[LoadReply, bytes]:
        key, copy, load_id = header["key"], header.get("copy"), header["id"]
        before = rss()
        started = time.perf_counter()
        config = self.config
        with self.models_lock:
            if copy is not None and copy in self.abandoned:
                raise Abandoned()
            self.loading[load_id] = (key, copy)
        row = self.running.claim(load_id)
        served: serving.ServedModel | None = None
        try:
            served = serving.load(
                Path(header["path"]), config.framework, config.default_accept, config.program, Path(config.packages_root),
                Path(config.submit_dir) if config.submit_dir else None, config.batching,
            )
        finally:
            self.running.release(row)
            with self.models_lock:
                del self.loading[load_id]
                answered = load_id in self.answered
                self.answered.discard(load_id)
                # A later copy of the name (the front numbers them in order) means this one was
                # unloaded while it loaded, its abandonment still queued: the later copy stays.
                held = self.copies.get(key) if key in self.models else None
                stale = copy is not None and held is not None and held > copy
                wanted = not answered and not stale and (copy is None or copy not in self.abandoned)
                if served is not None and wanted:
                    self.models[key] = served
                    self.copies[key] = copy
            if served is not None and not wanted:  # the front gave up on this load: nobody wants it now
                log.warning("load of %s finished after the front gave up on it: dropped", key)
                del served
                _release_memory()
            if answered:
                raise Answered()  # the abandonment's answer was this load's, whatever it did
        if not wanted:
            raise Abandoned()
        reply: LoadReply = {
            "id": header["id"], "status": 200,
            "seconds": time.perf_counter() - started, "memory_bytes": max(0, rss() - before),
        }
        return reply, b""

    def unload(self, header: UnloadRequest, body: bytes) -> tuple[UnloadReply, bytes]:
        key, copy = header["key"], header.get("copy")
        early: list[int] = []
        with self.models_lock:
            if header.get("abandon_loads"):  # the front gave up on loads of this name (copy) still running
                if copy is not None:
                    self.abandoned[copy] = None
                    while len(self.abandoned) > ABANDONED_KEPT:
                        del self.abandoned[next(iter(self.abandoned))]
                early = [i for i, (name, of) in self.loading.items()
                         if name == key and (copy is None or of == copy) and i not in self.answered]
                self.answered.update(early)
            served = None
            if copy is None or self.copies.get(key) == copy:  # else a later copy took the name: it stays
                served = self.models.pop(key, None)
                self.copies.pop(key, None)
        for load_id in early:  # answered now, so that the front's wait (and its load slot) ends
            self.send(self.failure({"id": load_id, "op": Op.LOAD, "key": key}, Abandoned()))
        if served is not None:
            del served
            _release_memory()
        return {"id": header["id"], "status": 200, "rss": rss()}, b""

    def invoke(self, frames: list[tuple[InvokeRequest, bytes]]) -> None:
        """Answer invokes of one model, predicted together where they merge."""
        served = self.models.get(frames[0][0]["key"])
        if served is None:
            answers: list[serving.Answer | BaseException] = [ModelNotLoaded("model is not loaded in its worker")] * len(frames)
        else:
            try:
                answers = served.answer_all([(body, header.get("headers", {})) for header, body in frames])
            except BaseException as err:  # noqa: BLE001 - a bug of ours fails this group, not the worker
                answers = [err] * len(frames)
        replies: list[tuple[Mapping[str, Any], bytes]] = []
        for (header, _), answer in zip(frames, answers):
            if isinstance(answer, BaseException):
                replies.append((self.failure(header, answer), b""))
                continue
            reply: InvokeReply = {"id": header["id"], "status": 200, "content_type": answer.content_type,
                                  "headers": answer.headers}
            if answer.batch > 1:
                reply["batch"] = answer.batch
            replies.append((reply, answer.body))
        try:
            self.send_all(replies)
        except OSError:
            pass  # the front is gone; the reading thread notices and the worker exits

    def answer_failed(self, frames: list[tuple[dict[str, Any], bytes]]) -> None:
        """Answer frames whose work failed past every other handler: a 500 each, so that the
        front is not left waiting for the timeout."""
        try:
            self.send_all([(self.failure(header, ServingError("internal error", 500)), b"") for header, _ in frames])
        except OSError:
            pass

    def ping(self, header: Request, body: bytes) -> tuple[PingReply, bytes]:
        return {"id": header["id"], "status": 200, "models": len(self.models)}, b""

    def run(self, runner: Runner, header: Any, body: bytes) -> None:
        """Run one operation and send its answer; failures become a status, type and message."""
        try:
            reply, out = runner(header, body)
        except Answered:
            return
        except BaseException as err:  # noqa: BLE001 - every failure must reach the caller
            reply, out = self.failure(header, err), b""
        try:
            self.send(reply, out)
        except OSError:
            pass  # the front is gone; the main loop notices and exits

    @staticmethod
    def failure(header: Mapping[str, Any], err: BaseException) -> Reply:
        """The reply of an operation that failed, and its line in the log."""
        failure = describe(err)  # never raises, whatever err is
        level = logging.ERROR if failure.status >= 500 else logging.INFO
        log.log(level, "%s %s failed (%d): %s", header["op"], header.get("key"), failure.status, failure.message)
        if failure.status >= 500:
            log.debug("%s", "".join(traceback.format_exception(err)))
        return {"id": header["id"], "status": failure.status, "error": failure.message, "type": failure.kind}

    def handle(self, header: dict[str, Any], body: bytes) -> None:
        entry = self.dispatch.get(header["op"])
        if entry is None:
            unknown = ServingError(f"unknown operation {header['op']!r}", 400)
            self.send({"id": header["id"], "status": 400, "error": unknown.message, "type": unknown.kind})
            return
        runner, start = entry
        if start is None:
            self.run(runner, header, body)
        else:
            start(lambda: self.run(runner, header, body))

    def serve(self) -> None:
        """Run the worker's threads until the front goes away or says to stop."""
        def take_turns(row: int) -> None:
            while (work := self.inbox.take()) is not None:
                self.running.mark(row, work.frames[0][0]["id"])
                try:
                    if work.frames[0][0]["op"] == Op.INVOKE:
                        self.invoke(work.frames)  # type: ignore[arg-type]
                    else:
                        self.handle(*work.frames[0])
                except BaseException:  # noqa: BLE001 - a bug of ours costs this work, never the thread
                    log.exception("%s failed unanswered", work.frames[0][0]["op"])
                    self.answer_failed(work.frames)
                finally:
                    self.running.clear(row)
                    self.inbox.done(work)

        threads = [threading.Thread(target=take_turns, args=(index,), name=f"serve-{index}", daemon=True)
                   for index in range(self.config.threads)]
        for thread in threads:
            thread.start()
        self.inbox.wait_closed()


def main() -> None:
    config = WorkerConfig.from_json(sys.argv[1])
    fd, front_pid, running_fd = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    setup_logging(config.log_level, f"worker[{config.name}]")
    die_with_the_front(front_pid)
    # Ctrl-C in a terminal reaches the whole process group: the front decides when workers end.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = socket.socket(fileno=fd)
    started = time.perf_counter()
    import handlers

    framework = handlers.get(config.framework)
    set_decoded_limit(config.max_decoded_bytes)
    for module in framework.imports:
        importlib.import_module(module)
    if framework.setup is not None:
        framework.setup(config.intra_op_threads, config.fpmath_mode)
    # The framework's objects live as long as the worker: keep them out of every collection, so
    # that an unload's gc.collect() traverses only what models allocated (140 ms -> a few ms).
    gc.collect()
    gc.freeze()
    worker = Worker(config, sock, RunningTable(running_fd, config.threads))
    hello: Hello = {"id": HELLO_ID, "op": Op.HELLO, "pid": os.getpid(), "import_seconds": time.perf_counter() - started}
    worker.send(hello)
    log.info("ready: %s imported in %.2fs", framework.name, time.perf_counter() - started)
    worker.serve()
    # Leave without waiting for stuck threads: the front has gone or asked us to stop.
    os._exit(0)


class Answered(Exception):
    """The operation's answer has been sent already (an abandoned load's, at its abandonment)."""


class Abandoned(ModelNotLoaded):
    """The front gave up on this load: the model was unloaded, or its load timed out, while it loaded."""

    def __init__(self) -> None:
        super().__init__("the load was abandoned: the model was unloaded, or its load timed out, while it loaded")


ABANDONED_KEPT = 10_000  # copies abandoned that are remembered (a load may still be on its way)


def _own_thread(run: Callable[[], None]) -> None:
    threading.Thread(target=run, name="load", daemon=True).start()

