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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson

from handlers import serving
from server.errors import describe_exception
from server.logs import setup_logging
from server.memory import rss
from server.protocol import pack, parse_header, unpack_prefix, PREFIX

log = logging.getLogger("worker")


def _release_memory() -> None:
    """Hand freed heap pages back to the OS, so an unload shows in RSS (glibc only)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class Worker:
    def __init__(self, config: dict, sock: socket.socket):
        self.config = config
        self.sock = sock
        self.reader = sock.makefile("rb", buffering=1 << 16)
        self.write_lock = threading.Lock()
        self.models: dict[str, serving.ServedModel] = {}
        self.loads = ThreadPoolExecutor(config.get("load_threads", 2), thread_name_prefix="load")

    # -------------------------------------------------------------------- frames

    def send(self, header: dict, body: bytes = b"") -> None:
        parts = pack(header, body)
        with self.write_lock:
            for part in parts:
                self.sock.sendall(part)

    def receive(self) -> tuple[dict, bytes] | None:
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

    def load(self, header: dict) -> dict:
        key = header["key"]
        before = rss()
        started = time.perf_counter()
        config = self.config
        served = serving.load(
            Path(header["path"]), config["framework"], config["default_accept"], config["program"],
            Path(config["packages_root"]),
        )
        self.models[key] = served
        return {
            "status": 200,
            "seconds": time.perf_counter() - started,
            "memory_bytes": max(0, rss() - before),
        }

    def unload(self, header: dict) -> dict:
        self.models.pop(header["key"], None)
        _release_memory()
        return {"status": 200, "rss": rss()}

    def invoke(self, header: dict, body: bytes) -> tuple[dict, bytes]:
        served = self.models.get(header["key"])
        if served is None:
            return {"status": 404, "error": "model is not loaded in its worker"}, b""
        out, content_type, response_headers = served.invoke(body, header.get("headers", {}))
        return {"status": 200, "content_type": content_type, "headers": response_headers}, out

    def run(self, header: dict, body: bytes) -> None:
        """Run one operation and send its answer; failures become a status and a message."""
        op = header["op"]
        try:
            if op == "invoke":
                reply, out = self.invoke(header, body)
            elif op == "load":
                reply, out = self.load(header), b""
            elif op == "unload":
                reply, out = self.unload(header), b""
            else:
                reply, out = {"status": 400, "error": f"unknown operation {op!r}"}, b""
        except BaseException as err:  # noqa: BLE001 - every failure must reach the caller
            status, message = describe_exception(err)
            level = logging.ERROR if status >= 500 else logging.INFO
            log.log(level, "%s %s failed (%d): %s", op, header.get("key"), status, message)
            if status >= 500:
                log.debug("%s", "".join(traceback.format_exception(err)))
            reply, out = {"status": status, "error": message}, b""
        reply["id"] = header["id"]
        try:
            self.send(reply, out)
        except OSError:
            pass  # the front is gone; the main loop notices and exits

    def serve(self) -> None:
        """Run the reader/runner threads until the front goes away or says to stop."""
        done = threading.Event()
        read_lock = threading.Lock()

        def take_turns() -> None:
            while not done.is_set():
                with read_lock:
                    frame = None if done.is_set() else self.receive()
                if frame is None or frame[0]["op"] == "shutdown":
                    done.set()
                    return
                header, body = frame
                if header["op"] in ("load", "unload"):
                    self.loads.submit(self.run, header, body)
                elif header["op"] == "ping":
                    self.send({"id": header["id"], "status": 200, "models": len(self.models)})
                else:
                    self.run(header, body)

        for index in range(self.config["threads"]):
            threading.Thread(target=take_turns, name=f"serve-{index}", daemon=True).start()
        done.wait()


def main() -> None:
    config = orjson.loads(sys.argv[1])
    fd = int(sys.argv[2])
    setup_logging(config.get("log_level", "INFO"), f"worker[{config['name']}]")
    # Ctrl-C in a terminal reaches the whole process group: the front decides when workers end.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = socket.socket(fileno=fd)
    started = time.perf_counter()
    import handlers

    framework = handlers.get(config["framework"])
    for module in framework.imports:
        importlib.import_module(module)
    if framework.setup is not None:
        framework.setup(config["intra_op_threads"])
    worker = Worker(config, sock)
    worker.send(
        {
            "id": 0,
            "op": "hello",
            "pid": os.getpid(),
            "import_seconds": time.perf_counter() - started,
        }
    )
    log.info("ready: %s imported in %.2fs", framework.name, time.perf_counter() - started)
    worker.serve()
    # Leave without waiting for stuck threads: the front has gone or asked us to stop.
    os._exit(0)


if __name__ == "__main__":
    main()
