"""The one error vocabulary: what any exception becomes on its way to a client."""

import pytest

from handlers.errors import BadInput, ServingError, describe, scrub, short


class ToolkitStyle(Exception):
    def __init__(self, status_code, message):
        super().__init__(status_code, message)
        self.status_code, self.message = status_code, message


@pytest.mark.parametrize("err, status, kind, words", [
    (BadInput("bad row"), 400, "BadRequestException", "bad row"),
    (ToolkitStyle(403, "forbidden input"), 403, "BadRequestException", "forbidden input"),
    (MemoryError(), 507, "InsufficientMemoryException", "out of memory"),
    (ValueError("bad feature 'age' in /home/someone/secret/file.py"), 500, "InternalServerException",
     "ValueError: bad feature 'age' in file.py"),
    (RuntimeError("The following operation failed\nTraceback of TorchScript\n  File x\nRuntimeError: shapes differ"),
     500, "InternalServerException", "RuntimeError: shapes differ"),
    (ToolkitStyle(True, "a bool is not a status"), 500, "InternalServerException", "ToolkitStyle"),
])
def test_describe(err, status, kind, words):
    failure = describe(err)
    assert (failure.status, failure.kind) == (status, kind)
    assert words in failure.message
    assert "/home" not in failure.message and "\n" not in failure.message


def test_native_stack_frames_never_reach_the_message():
    err = RuntimeError("[12:00:00] src/learner.cc:123: Check failed: bad model\nStack trace:\n  [bt] (0) libxgboost.so(+0x1)\n")
    assert short(err) == "[12:00:00] src/learner.cc:123: Check failed: bad model"


def test_scrub_keeps_messages_short_and_path_free():
    assert scrub("no such file /opt/ml/models/abc/model/model.pkl here") == "no such file model.pkl here"
    assert len(scrub("x" * 5000)) == 600
    assert ServingError("m", 418).body() == {"code": 418, "type": "BadRequestException", "message": "m"}
