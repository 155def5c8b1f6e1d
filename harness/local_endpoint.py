"""A real local SageMaker endpoint (``python -m local serve``) on a free loopback port.

For the tests of ``local/`` and ``benchmarks/routing.py``: the process is stopped as a server is
(SIGTERM; ``stop`` reports what it left behind), and ``boto(service)`` gives a real boto3
client whose ``endpoint_url`` is this port, as a user's script would have.
"""

import subprocess
import sys
from pathlib import Path

import boto3
import httpx
from botocore.config import Config

from harness.server import ROOT, ServerProcess, free_port


class LocalEndpointProcess(ServerProcess):
    def __init__(self, state_dir: Path, *args: str):  # not super().__init__: that starts a model server
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        state_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = state_dir / "local-endpoint.log"
        self.log_file = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "local", "serve", "--port", str(self.port), "--state-dir", str(state_dir),
             "--seed", "0", *args],
            cwd=ROOT, stdout=self.log_file, stderr=subprocess.STDOUT,
        )
        self.client = httpx.Client(base_url=self.url, timeout=30)
        self.wait_listening()

    def boto(self, service: str, **config):
        return boto3.client(
            service, endpoint_url=self.url, region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing",
            config=Config(retries={"max_attempts": 1}, read_timeout=120, **config),
        )

    def instances(self, endpoint: str) -> dict:
        """The local endpoint's view of an endpoint's instances (``GET /_local/endpoints/<name>``)."""
        return self.client.get(f"/_local/endpoints/{endpoint}").json()

    def metrics(self) -> str:
        return self.client.get("/metrics").text
