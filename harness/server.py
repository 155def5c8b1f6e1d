"""A real ``python -m server serve`` on a free loopback port, with an HTTP client for it.

Tests (tests/conftest.py) and benchmarks (benchmarks/*.py) start servers only through
``ServerProcess``, so that both see the server exactly as the platform runs it: its own
process, the platform's variables, SIGTERM to stop.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from server.shared.paths import PROJECT_ROOT as ROOT  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tree_memory(pid: int) -> tuple[int, int]:
    """RSS and PSS of a process and all its descendants, in bytes."""
    rss = pss = 0
    root = psutil.Process(pid)
    for process in [root] + root.children(recursive=True):
        try:
            info = process.memory_full_info()
        except psutil.NoSuchProcess:
            continue
        rss += info.rss
        pss += info.pss
    return rss, pss


class ServerProcess:
    """One server process (its output in ``log_path``) and an HTTP client for it."""

    def __init__(self, env: dict, log_path: Path, wait_ready: bool = True, timeout: float = 120,
                 wrapper: tuple[str, ...] = ()):
        """``wrapper`` runs the server under another command (``unshare --pid ...``, say)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        full_env = {**os.environ, "SAGEMAKER_BIND_TO_PORT": str(self.port), "MODEL_SERVER_HOST": "127.0.0.1"}
        full_env.update({k: str(v) for k, v in env.items()})
        self.log_file = open(log_path, "wb")
        self.process = subprocess.Popen(
            [*wrapper, sys.executable, "-m", "server", "serve"], cwd=ROOT, env=full_env,
            stdout=self.log_file, stderr=subprocess.STDOUT,
        )
        self.client = httpx.Client(base_url=self.url, timeout=timeout)
        try:
            self.wait_listening()
            if wait_ready:
                self.wait_ping()
        except BaseException:  # a server that never came up must not outlive its caller either
            self.stop(grace=5)
            raise

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_listening(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited ({self.process.returncode}):\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"server did not listen within {timeout}s:\n{self.log()}")

    def wait_ping(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.client.get("/ping").status_code == 200:
                return
            time.sleep(0.1)
        raise RuntimeError(f"/ping did not turn 200 within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        if not self.log_file.closed:
            self.log_file.flush()
        return self.log_path.read_text(errors="replace")

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def memory(self) -> tuple[int, int]:
        return tree_memory(self.pid)

    def load(self, name: str, url, expect: int | None = 200) -> httpx.Response:
        """LoadModel; with ``expect``, fail unless it answers that status."""
        response = self.client.post("/models", json={"model_name": name, "url": str(url)})
        if expect is not None and response.status_code != expect:
            raise AssertionError(f"LoadModel {name}: {response.status_code} {response.text}")
        return response

    def stop(self, grace: float = 35) -> tuple[int, list[psutil.Process]]:
        """SIGTERM, as the platform stops a container: (exit code, processes left behind)."""
        children = self.descendants()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        _, alive = psutil.wait_procs(children, timeout=10)
        for process in alive:
            process.kill()
        self.client.close()
        self.log_file.close()
        return self.process.returncode, alive
