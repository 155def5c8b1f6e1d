"""A worker over a socket pair, in process: the front's end of the socket read as frames."""

import socket

import pytest

from server.shared import running
from server.shared.protocol import WorkerConfig
from server.worker.inbox import FrameReader
from server.worker.main import Worker


@pytest.fixture
def pair():
    front, worker = socket.socketpair()
    front.settimeout(5)
    config = WorkerConfig(framework="sklearn", name="sklearn-0", threads=1, load_threads=1, default_accept="application/json",
                          log_level="INFO", program="inference.py", intra_op_threads=1, packages_root="packages",
                          max_decoded_bytes=2**20)
    _, fd = running.create(config.threads)
    yield FrameReader(front), Worker(config, worker, running.RunningTable(fd, config.threads))
    front.close()
    worker.close()
