"""A worker process: holds the models of one framework and runs their requests.

Started by the front as ``python -m server.worker CONFIG_JSON FD``. It imports its framework
once, then serves frames from the socket ``FD`` on a few threads (NumPy and the frameworks
release the GIL in their kernels). The threads take turns as the reader ("leader/followers"):
whoever reads a request runs it itself while the next thread takes over the socket, so a request
never waits for a hand-off to another thread. Loads go to threads of their own, so a slow load
never holds up predictions. It exits when the socket closes: it can never outlive the front.
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
from handlers.errors import NotFound, ServingError, describe
from server.logs import setup_logging
from server.memory import rss
from server.protocol import (
    HELLO_ID,
    PREFIX,
    Hello,
    InvokeReply,
    InvokeRequest,
    LoadReply,
    LoadRequest,
    Op,
    PingReply,
    Request,
    UnloadReply,
    UnloadRequest,
    WorkerConfig,
    pack,
    parse_header,
    unpack_prefix,
)

log = logging.getLogger("worker")
Runner = Callable[[Any, bytes], tuple[Any, bytes]]


def _release_memory() -> None:
    """Hand freed heap pages back to the OS, so an unload shows in RSS (glibc only)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class Worker:
    def __init__(self, config: WorkerConfig, sock: socket.socket):
        self.config = config
        self.sock = sock
        self.reader = sock.makefile("rb", buffering=1 << 16)
        self.write_lock = threading.Lock()
        self.models: dict[str, serving.ServedModel] = {}
        # Loads run on threads of their own, so a slow load never holds up predictions; unloads
        # on another, so they never queue behind a slow load.
        self.loads = ThreadPoolExecutor(config.load_threads, thread_name_prefix="load")
        self.unloads = ThreadPoolExecutor(1, thread_name_prefix="unload")
        # op -> (runner, executor or None to run on the reading thread itself)
        self.dispatch = {
            Op.INVOKE: (self.invoke, None),
            Op.LOAD: (self.load, self.loads),
            Op.UNLOAD: (self.unload, self.unloads),
            Op.PING: (self.ping, None),
        }

    # -------------------------------------------------------------------- frames

    def send(self, header: Mapping[str, Any], body: bytes = b"") -> None:
        parts = pack(header, body)
        with self.write_lock:
            for part in parts:
                self.sock.sendall(part)

    def receive(self) -> tuple[dict[str, Any], bytes] | None:
        prefix = self.reader.read(PREFIX.size)
        if len(prefix) < PREFIX.size:
            return None
        header_len, body_len = unpack_prefix(prefix)
        header = parse_header(self.reader.read(header_len))
        body = self.reader.read(body_len) if body_len else b""
        if len(body) < body_len:
            return None
        return header, body

    # -------------------------------------------------------------------- operations

    def load(self, header: LoadRequest, body: bytes) -> tuple[LoadReply, bytes]:
        before = rss()
        started = time.perf_counter()
        config = self.config
        served = serving.load(
            Path(header["path"]), config.framework, config.default_accept, config.program, Path(config.packages_root)
        )
        self.models[header["key"]] = served
        reply: LoadReply = {
            "id": header["id"], "status": 200,
            "seconds": time.perf_counter() - started, "memory_bytes": max(0, rss() - before),
        }
        return reply, b""

    def unload(self, header: UnloadRequest, body: bytes) -> tuple[UnloadReply, bytes]:
        self.models.pop(header["key"], None)
        _release_memory()
        return {"id": header["id"], "status": 200, "rss": rss()}, b""

    def invoke(self, header: InvokeRequest, body: bytes) -> tuple[InvokeReply, bytes]:
        served = self.models.get(header["key"])
        if served is None:
            raise NotFound("model is not loaded in its worker")
        out, content_type, response_headers = served.invoke(body, header.get("headers", {}))
        return {"id": header["id"], "status": 200, "content_type": content_type, "headers": response_headers}, out

    def ping(self, header: Request, body: bytes) -> tuple[PingReply, bytes]:
        return {"id": header["id"], "status": 200, "models": len(self.models)}, b""

    def run(self, runner: Runner, header: Any, body: bytes) -> None:
        """Run one operation and send its answer; failures become a status, type and message."""
        try:
            reply, out = runner(header, body)
        except BaseException as err:  # noqa: BLE001 - every failure must reach the caller
            failure = describe(err)
            level = logging.ERROR if failure.status >= 500 else logging.INFO
            log.log(level, "%s %s failed (%d): %s", header["op"], header.get("key"), failure.status, failure.message)
            if failure.status >= 500:
                log.debug("%s", "".join(traceback.format_exception(err)))
            reply, out = {"id": header["id"], "status": failure.status, "error": failure.message, "type": failure.kind}, b""  # noqa: E501
        try:
            self.send(reply, out)
        except OSError:
            pass  # the front is gone; the main loop notices and exits

    def handle(self, header: dict[str, Any], body: bytes) -> None:
        entry = self.dispatch.get(header["op"])
        if entry is None:
            unknown = ServingError(f"unknown operation {header['op']!r}", 400)
            self.send({"id": header["id"], "status": 400, "error": unknown.message, "type": unknown.kind})
            return
        runner, executor = entry
        if executor is None:
            self.run(runner, header, body)
        else:
            executor.submit(self.run, runner, header, body)

    def serve(self) -> None:
        """Run the reader/runner threads until the front goes away or says to stop."""
        done = threading.Event()
        read_lock = threading.Lock()

        def take_turns() -> None:
            while not done.is_set():
                with read_lock:
                    frame = None if done.is_set() else self.receive()
                if frame is None or frame[0]["op"] == Op.SHUTDOWN:
                    done.set()
                    return
                self.handle(*frame)

        for index in range(self.config.threads):
            threading.Thread(target=take_turns, name=f"serve-{index}", daemon=True).start()
        done.wait()


def main() -> None:
    config = WorkerConfig.from_json(sys.argv[1])
    fd = int(sys.argv[2])
    setup_logging(config.log_level, f"worker[{config.name}]")
    # Ctrl-C in a terminal reaches the whole process group: the front decides when workers end.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = socket.socket(fileno=fd)
    started = time.perf_counter()
    import handlers

    framework = handlers.get(config.framework)
    handlers.codecs.set_decoded_limit(config.max_decoded_bytes)
    for module in framework.imports:
        importlib.import_module(module)
    if framework.setup is not None:
        framework.setup(config.intra_op_threads)
    worker = Worker(config, sock)
    hello: Hello = {"id": HELLO_ID, "op": Op.HELLO, "pid": os.getpid(), "import_seconds": time.perf_counter() - started}
    worker.send(hello)
    log.info("ready: %s imported in %.2fs", framework.name, time.perf_counter() - started)
    worker.serve()
    # Leave without waiting for stuck threads: the front has gone or asked us to stop.
    os._exit(0)


if __name__ == "__main__":
    main()
