"""Real servers for the tests: ``python -m server serve`` on a free port, spoken to over HTTP.

``start_server(**env)`` starts one with the given environment and stops it (and checks it left
no process behind) at the end of the test or module that asked. ``examples`` builds the example
models of a framework once per session, in the layout the platform unpacks.
"""

import importlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """One server process and an HTTP client for it."""

    def __init__(self, env: dict, log_path: Path, wait_ready: bool = True):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        full_env = {**os.environ, "SAGEMAKER_BIND_TO_PORT": str(self.port), "MODEL_SERVER_HOST": "127.0.0.1"}
        full_env.update({k: str(v) for k, v in env.items()})
        self.log_file = open(log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server", "serve"], cwd=ROOT, env=full_env,
            stdout=self.log_file, stderr=subprocess.STDOUT,
        )
        self.client = httpx.Client(base_url=self.url, timeout=120)
        self.wait_listening()
        if wait_ready:
            self.wait_ping()

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
        self.log_file.flush()
        return self.log_path.read_text(errors="replace")

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def load(self, name: str, url, expect: int = 200) -> httpx.Response:
        response = self.client.post("/models", json={"model_name": name, "url": str(url)})
        assert response.status_code == expect, response.text
        return response

    def stop(self) -> int:
        """SIGTERM, as the platform stops a container; returns the exit code."""
        children = self.descendants()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(35)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        gone, alive = psutil.wait_procs(children, timeout=10)
        for process in alive:
            process.kill()
        self.client.close()
        self.log_file.close()
        assert not alive, f"processes left behind after SIGTERM: {[p.pid for p in alive]}"
        return self.process.returncode


@pytest.fixture(scope="session")
def examples(tmp_path_factory):
    """``examples(framework) -> models root`` holding that framework's example models (built once)."""
    root = tmp_path_factory.mktemp("examples")
    built = {}

    def build(framework: str) -> Path:
        if framework not in built:
            module = importlib.import_module(f"models.examples.{framework}")
            built[framework] = module.build(root)
        return root

    return build


def _starter(tmp_path_factory, request):
    servers = []

    def start(wait_ready: bool = True, **env) -> Server:
        log_path = tmp_path_factory.mktemp("server") / "server.log"
        server = Server(env, log_path, wait_ready=wait_ready)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def start_server(tmp_path_factory, request):
    """Start servers for one test; each is stopped with SIGTERM afterwards."""
    yield from _starter(tmp_path_factory, request)


@pytest.fixture(scope="module")
def start_module_server(tmp_path_factory, request):
    """Start servers shared by a module's tests."""
    yield from _starter(tmp_path_factory, request)
