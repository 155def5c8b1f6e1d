"""The one error vocabulary: what any exception becomes on its way to a client."""

import traceback
import types

import pytest

from handlers.describe import USER_MODULE_PREFIX, describe, scrub, short
from handlers.errors import BadInput, ServingError


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


# ------------------------------------------------------------ exceptions that fight being described
# Each is a real class as user code could write it: describing one must
# never raise, and must still say what it can.


class StrRaises(Exception):
    def __str__(self):
        raise RuntimeError("no str")


class StrNotAString(Exception):
    def __str__(self):
        return 42


class StrRecurses(Exception):
    def __str__(self):
        return str(self)


class StrExits(Exception):
    def __str__(self):
        raise SystemExit(3)


class MessageRaises(Exception):
    @property
    def message(self):
        raise RuntimeError("boom")


class StatusRaises(Exception):
    @property
    def status_code(self):
        raise KeyError("s")


class Teapot(Exception):
    status_code = 418
    message = {"nested": "dict"}


class BrokenOurs(ServingError):
    """A user's subclass of ours whose fields a reply cannot carry."""

    status = "500"

    def __init__(self):
        super().__init__("a message")
        self.message = ["not", "a", "string"]


@pytest.mark.parametrize("err, message", [
    (StrRaises(), "StrRaises"),
    (StrNotAString(), "StrNotAString"),
    (StrRecurses(), "StrRecurses"),
    (StrExits(), "StrExits"),
    (MessageRaises("x"), "MessageRaises: x"),
    (StatusRaises("x"), "StatusRaises: x"),
])
def test_an_exception_whose_attributes_raise_is_still_described(err, message):
    failure = describe(err)
    assert (failure.status, failure.kind, failure.message) == (500, "InternalServerException", message)
    assert short(err) == message.rsplit(": ", 1)[-1]


def test_a_status_code_with_a_message_that_is_no_string_keeps_its_status_and_reads_well():
    failure = describe(Teapot("teapot"))
    assert failure.body() == {"code": 418, "type": "BadRequestException", "message": "teapot"}
    assert describe(Teapot()).body() == {"code": 418, "type": "BadRequestException", "message": "Teapot"}


def test_a_user_subclass_of_ours_with_unfit_fields_is_rebuilt():
    failure = describe(BrokenOurs())
    assert failure.body() == {"code": 500, "type": "InternalServerException", "message": "a message"}


def test_a_huge_message_is_cut_short():
    failure = describe(ValueError("x" * 10_000_000))
    assert failure.message.startswith("ValueError: xxx") and len(failure.message) <= 600
    assert len(describe(ToolkitStyle(400, "y" * 10_000_000)).message) <= 600


def test_a_recursion_error_is_described():
    def deeper(n):
        return deeper(n + 1)

    with pytest.raises(RecursionError) as caught:
        deeper(0)
    assert describe(caught.value).message == "RecursionError: maximum recursion depth exceeded"


# ------------------------------------------------------------ internals that must not leak

USER_MODULE = USER_MODULE_PREFIX + "ffe5037f7e644eed"  # as handlers.user_code names a model's module


def test_a_user_object_in_a_message_shows_neither_module_nor_address():
    user_class = type("X", (), {"__module__": USER_MODULE})
    failure = describe(ValueError(user_class()))
    assert failure.message == "ValueError: <X object>"
    bound = describe(TypeError(f"cannot use {user_class().__init__!r}"))
    assert USER_MODULE not in bound.message and "0x" not in bound.message


def test_the_user_module_name_never_shows():
    module = types.ModuleType(USER_MODULE)
    with pytest.raises(AttributeError) as caught:
        module.predict_fm  # noqa: B018 - the real AttributeError of a user module
    assert describe(caught.value).message == "AttributeError: module 'user_code' has no attribute 'predict_fm'"


PROBE_TRACEBACK = (
    'Traceback (most recent call last):\n  File "/home/someone/app.py", line 3, in f\n'
    "boom at /home/user/.ssh/id_rsa and C:\\Users\\x"
)


def real_traceback() -> str:
    """The text ``traceback.format_exc`` gives for a real chained error, as users paste it."""
    try:
        try:
            {}["key"]
        except KeyError as err:
            raise ValueError("the real cause") from err
    except ValueError:
        return traceback.format_exc()
    raise AssertionError("unreachable")


@pytest.mark.parametrize("text, message", [
    (PROBE_TRACEBACK, "RuntimeError: boom at id_rsa and x"),
    (real_traceback(), "RuntimeError: the real cause"),
    ("Traceback (most recent call last):\n", "RuntimeError"),
    ('Traceback (most recent call last):\n  File "/srv/app.py", line 3, in f\n    g()\n', "RuntimeError"),
])
def test_a_traceback_in_a_message_yields_its_last_line(text, message):
    failure = describe(RuntimeError(text))
    assert failure.message == message
    assert "Traceback" not in failure.message and 'File "' not in failure.message


def test_a_traceback_in_a_status_error_or_a_message_of_ours_yields_its_last_line():
    assert describe(ToolkitStyle(400, real_traceback())).message == "ValueError: the real cause"
    assert describe(BadInput(PROBE_TRACEBACK)).message == "boom at id_rsa and x"
    assert scrub(real_traceback()) == "ValueError: the real cause"
