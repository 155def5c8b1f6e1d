"""Real servers for the tests: ``python -m server serve`` on a free port, spoken to over HTTP.

``start_server(**env)`` starts one with the given environment and stops it (and checks it left
no process behind) at the end of the test or module that asked. ``examples`` builds the example
models of a framework once per session, in the layout the platform unpacks.
"""

import importlib
import os
from pathlib import Path

import pytest

from harness.server import ServerProcess


class Server(ServerProcess):
    """A server for a test: stopping it also checks that it left no process behind."""

    def stop(self, grace: float = 35) -> int:  # type: ignore[override]
        code, alive = super().stop(grace)
        assert not alive, f"processes left behind after SIGTERM: {[p.pid for p in alive]}"
        return code


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

    def start(wait_ready: bool = True, wrapper: tuple[str, ...] = (), **env) -> Server:
        # Standby workers (MODEL_SERVER_WARM_FRAMEWORKS=auto) would import every framework in
        # every test's server; tests that are about them ask for them, and the variable in the
        # environment runs the rest with them too.
        env.setdefault("MODEL_SERVER_WARM_FRAMEWORKS", os.environ.get("MODEL_SERVER_WARM_FRAMEWORKS", "none"))
        log_path = tmp_path_factory.mktemp("server") / "server.log"
        server = Server(env, log_path, wait_ready=wait_ready, wrapper=wrapper)
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
