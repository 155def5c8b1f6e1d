"""The local endpoint for tests: ``python -m local serve`` on a free port, driven by real boto3 clients.

Every client (sagemaker, sagemaker-runtime, s3, sns, sqs) gets the same ``endpoint_url``, as a
user's script would; nothing is mocked (S3 and SNS are moto's server behind the port). The
process is stopped as conftest's servers are, and so is checked for leftovers: every instance
it started must be gone with it.
"""

import subprocess
import sys
from pathlib import Path

import boto3
import httpx
import pytest
from botocore.config import Config

from tests.conftest import ROOT, Server, free_port


class LocalEndpoint(Server):
    def __init__(self, state_dir: Path, *args: str):
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
        return self.client.get(f"/_local/endpoints/{endpoint}").json()

    def metrics(self) -> str:
        return self.client.get("/metrics").text


def local_endpoint(*args: str):
    """A module-scoped fixture: one local endpoint (started with ``args``) for a test module."""

    @pytest.fixture(scope="module")
    def local(tmp_path_factory):
        endpoint = LocalEndpoint(tmp_path_factory.mktemp("local-endpoint"), *args)
        yield endpoint
        endpoint.stop()

    return local
