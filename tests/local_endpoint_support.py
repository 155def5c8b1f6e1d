"""The local endpoint for tests: ``python -m local serve`` on a free port, driven by real boto3 clients.

Every client (sagemaker, sagemaker-runtime, s3, sns, sqs) gets the same ``endpoint_url``, as a
user's script would; nothing is mocked (S3 and SNS are moto's server behind the port).
"""

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import httpx
import psutil
from botocore.config import Config

from tests.conftest import ROOT, free_port


class LocalEndpoint:
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
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"local endpoint exited:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"local endpoint did not listen:\n{self.log()}")
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def client(self, service: str, **config):
        return boto3.client(
            service, endpoint_url=self.url, region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing",
            config=Config(retries={"max_attempts": 1}, read_timeout=120, **config),
        )

    def log(self) -> str:
        self.log_file.flush()
        return self.log_path.read_text(errors="replace")

    def instances(self, endpoint: str) -> dict:
        return self.http.get(f"/_local/endpoints/{endpoint}").json()

    def metrics(self) -> str:
        return self.http.get("/metrics").text

    def stop(self) -> None:
        children = psutil.Process(self.process.pid).children(recursive=True)
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        gone, alive = psutil.wait_procs(children, timeout=10)
        for process in alive:
            process.kill()
        self.http.close()
        self.log_file.close()
        assert not alive, f"processes left behind: {[p.pid for p in alive]}"
