"""Instances: this repository's server run as the platform runs the image, one process per container.

Each container gets ``serve`` and the platform's variables: its own ``SAGEMAKER_BIND_TO_PORT``
inside the instance's ``SAGEMAKER_SAFE_PORT_RANGE``, ``SAGEMAKER_MULTI_MODEL`` for a multi-model
container, and the directory the platform would mount (``/opt/ml/model`` for a single model,
``/opt/ml/models`` for many), which here is a directory of the instance's own. The user's
``Environment`` comes last and wins, as on the platform. A process of this checkout inherits
nothing of this process's AWS configuration: the platform's variables (local.endpoint) are its
only credentials and endpoint, as the execution role is a container's.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx

if TYPE_CHECKING:
    from local.multimodel import ModelCache

ROOT = Path(__file__).resolve().parent.parent  # where ``python -m server`` is importable
STOP_GRACE_SECONDS = 30  # SIGTERM, then SIGKILL 30 s later, as the platform stops a container


def free_ports(count: int) -> list[int]:
    """``count`` ports free right now on loopback (held open together so they are distinct)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class ContainerSpec:
    """One container of a model, as CreateModel described it."""

    hostname: str
    image: str
    model_data_url: str | None
    multi_model: bool
    environment: dict[str, str]
    cache_enabled: bool = True


IMAGE_MODEL_DIR = "/opt/ml/model"  # where the platform mounts a single model in the image
IMAGE_MODELS_ROOT = "/opt/ml/models"  # and a multi-model container's models
DOCKER_HOST_NAME = "host.docker.internal"  # this machine, as a container sees it (--add-host ...:host-gateway)


def seen_from_a_container(url: str) -> str:
    """``url`` with a loopback host replaced by the name a container reaches this machine by."""
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        return url
    return parts._replace(netloc=f"{DOCKER_HOST_NAME}:{parts.port}" if parts.port else DOCKER_HOST_NAME).geturl()


class Container:
    """One running server of an instance: a process of this checkout, or the built image.

    ``runner="process"`` runs ``python -m server serve`` with the platform's variables;
    ``runner="docker"`` runs ``docker run IMAGE serve`` with the same variables, the model
    directories mounted where the platform mounts them and the port published on loopback only.
    """

    def __init__(self, spec: ContainerSpec, directory: Path, port: int, safe_range: str, extra_env: dict[str, str],
                 runner: str = "process", name: str = "container"):
        self.spec = spec
        self.directory = directory
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.model_dir = directory / "model"
        self.models_root = directory / "models"
        platform = {
            "SAGEMAKER_BIND_TO_PORT": str(port),
            "SAGEMAKER_SAFE_PORT_RANGE": safe_range,
            "SAGEMAKER_MULTI_MODEL": "true" if spec.multi_model else "false",
            **extra_env,
        }
        user = {k: str(v) for k, v in spec.environment.items()}  # the user's Environment wins, as on the platform
        if runner == "docker":
            self.models_url_root = Path(IMAGE_MODELS_ROOT)  # LoadModel urls as the container sees them
            if "AWS_ENDPOINT_URL" in platform:
                platform["AWS_ENDPOINT_URL"] = seen_from_a_container(platform["AWS_ENDPOINT_URL"])
            variables = [item for k, v in {**platform, **user}.items() for item in ("-e", f"{k}={v}")]
            self.argv = [
                "docker", "run", "--rm", "--name", name, "--add-host", f"{DOCKER_HOST_NAME}:host-gateway",
                "-p", f"127.0.0.1:{port}:{port}", *variables,
                "-v", f"{self.model_dir}:{IMAGE_MODEL_DIR}:ro", "-v", f"{self.models_root}:{IMAGE_MODELS_ROOT}",
                spec.image, "serve",
            ]
            self.env = dict(os.environ)  # the docker client's own environment
        else:
            self.models_url_root = self.models_root
            self.argv = [sys.executable, "-m", "server", "serve"]
            env = {k: v for k, v in os.environ.items() if not k.startswith(("SAGEMAKER_", "MODEL_SERVER_", "AWS_"))}
            env.update(PYTHONPATH=str(ROOT), MODEL_SERVER_HOST="127.0.0.1", MODEL_SERVER_MODEL_DIR=str(self.model_dir),
                       MODEL_SERVER_MODELS_ROOT=str(self.models_root))
            self.env = {**env, **platform, **user}
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = directory / "container.log"

    def start(self) -> None:
        self.model_dir.mkdir(parents=True, exist_ok=True)
        self.models_root.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.argv, cwd=self.directory, env=self.env,
                                            stdout=log, stderr=subprocess.STDOUT)

    def exit_reason(self) -> str | None:
        """Why the process is gone (None while it runs)."""
        if self.process is None or self.process.poll() is None:
            return None
        code = self.process.returncode
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        return f"the container {self.spec.hostname} exited with {how}; {self.log_tail()}"

    def log_tail(self, lines: int = 3) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()[-lines:]
        except OSError:
            return ""
        return "last log lines: " + " | ".join(line.strip()[:300] for line in text) if text else ""

    async def wait_healthy(self, client: httpx.AsyncClient, timeout: float) -> None:
        """Until ``/ping`` answers 200; RuntimeError with the reason when it does not in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reason = self.exit_reason()
            if reason:
                raise RuntimeError(reason)
            try:
                if (await client.get(f"{self.url}/ping", timeout=2)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
        raise RuntimeError(
            f"the container {self.spec.hostname} did not pass the ping health check within {timeout:.0f} s"
        )

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after the grace period (blocking: call it from a thread)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class Instance:
    """One instance of a production variant: its containers, and the requests it has in flight."""

    name: str
    endpoint: str
    variant: str
    directory: Path
    containers: list[Container]
    outstanding: int = 0
    models: ModelCache | None = None  # when one container is multi-model
    healthy: bool = False
    served: int = field(default=0)

    def container(self, hostname: str) -> Container:
        for container in self.containers:
            if container.spec.hostname == hostname:
                return container
        raise LookupError(f"{self.name} has no container {hostname}")

    def stop(self) -> None:
        for container in self.containers:
            container.stop()


def build_instance(
    name: str, endpoint: str, variant: str, directory: Path, specs: list[ContainerSpec], extra_env: dict[str, str],
    runner: str = "process",
) -> Instance:
    """An instance whose containers have ports from one safe range of their own (not started yet)."""
    ports = sorted(free_ports(len(specs)))
    safe_range = f"{ports[0]}-{ports[-1]}"
    containers = [
        Container(spec, directory / spec.hostname, port, safe_range, extra_env, runner,
                  name=f"local-endpoint-{endpoint}-{name}-{spec.hostname}-{port}")
        for spec, port in zip(specs, ports, strict=True)
    ]
    for container in containers:
        container.directory.mkdir(parents=True, exist_ok=True)
    return Instance(name, endpoint, variant, directory, containers)
