"""The one error vocabulary of the server: a failure with the HTTP status a client should see.

Everything that answers a request with an error raises a ``ServingError`` (or a subclass named
for its case): the front for routing, bodies and the registry, the handlers and codecs for bad
input, the worker for failed loads. It travels from a worker to the front as its status, type
and message, and leaves as the body clients of the AWS containers already parse (MMS,
TorchServe): ``{"code": N, "type": "ModelNotFoundException", "message": "..."}``.

``describe`` turns any other exception (a user's hook, a framework, the sagemaker-inference
toolkit's errors with their own ``status_code``) into the same three fields. Messages never
carry a traceback, a native stack trace or a local path: the log has the detail.
"""

import re
import sys
from typing import Any

MAX_MESSAGE = 600
# Users' modules are imported as ``user_code_<hex>`` (handlers.user_code): the hex is a digest of
# the model's local path, so the name never reaches a client (``<X object>``, ``user_code``).
USER_MODULE_PREFIX = "user_code_"

# The stable ``type`` of each status, as MMS and TorchServe name them; a subclass may refine it.
TYPES = {
    400: "BadRequestException",
    404: "ModelNotFoundException",
    405: "MethodNotAllowedException",
    406: "NotAcceptableException",
    409: "ConflictStatusException",
    413: "RequestEntityTooLargeException",
    415: "UnsupportedMediaTypeException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
    504: "RequestTimeoutException",
    507: "InsufficientMemoryException",
}


class ServingError(Exception):
    """A failure the client sees as ``status``, ``type`` and a short, path-free ``message``."""

    status = 500
    type: str | None = None  # None: the status's name in TYPES
    retry_after: int | None = None  # seconds, sent as a Retry-After header when set

    def __init__(self, message: str, status: int | None = None, type: str | None = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if type is not None:
            self.type = type

    @property
    def status_code(self) -> int:
        """The toolkit's name for the status, which user code written for it reads."""
        return self.status

    @property
    def kind(self) -> str:
        return self.type or TYPES.get(self.status, "InternalServerException" if self.status >= 500 else "BadRequestException")

    def body(self) -> dict[str, object]:
        return {"code": self.status, "type": self.kind, "message": self.message}


class BadInput(ServingError):
    """The request body could not be decoded or has the wrong shape."""

    status = 400


class NotFound(ServingError):
    """No such model (or url, or route)."""

    status = 404


class ModelNotLoaded(NotFound):
    """The model named is not loaded (never was, was unloaded, or its load failed)."""

    def __init__(self, message: str = "model is not loaded"):
        super().__init__(message)


class ResourceNotFound(NotFound):
    """No such route, model url or mode: the platform's ``ResourceNotFoundException``."""

    type = "ResourceNotFoundException"


class Conflict(ServingError):
    """A model of that name is loaded already."""

    status = 409


class UnsupportedContentType(ServingError):
    """No decoder for the request's Content-Type."""

    status = 415


class NotAcceptable(ServingError):
    """No encoder for any type the Accept header allows."""

    status = 406


class InsufficientMemory(ServingError):
    """The memory budget says no: the platform unloads least-recently-used models and retries."""

    status = 507


class Unavailable(ServingError):
    """Not now, but soon: a 503 that says when to try again (a Retry-After header)."""

    status = 503

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class ModelLoadError(ServingError):
    """The model directory cannot be loaded: the user's fault, so a 4xx unless stated otherwise."""

    status = 400
    type = "InvalidModelException"


# ---------------------------------------------------------------------------------- messages

_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])(?:/[^\s/'\"<>|:,;()\[\]]+){2,}")
_WINDOWS_PATH = re.compile(r"\b[A-Za-z]:\\(?:[^\s\\'\"<>|:,;()\[\]]+\\)+")
_USER_MODULE = re.compile(re.escape(USER_MODULE_PREFIX) + r"[0-9a-f]+(\.)?")
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+(?=>)")
_CAUSE = re.compile(r"^[A-Za-z_.]*(?:Error|Exception): ")
_NATIVE_FRAME = re.compile(r"^\s*(?:\[bt\]|Stack trace:|frame #\d+:|#\d+ 0x)")
_TRACEBACK = re.compile(r"^[ \t]*Traceback\b.*\(most recent call last\):", re.M)
_FRAME = re.compile(r'^File "[^"]*", line \d+')
_TRACEBACK_LINE = re.compile(
    r"^(?:Traceback\b.*\(most recent call last\):|During handling of the above exception"
    r"|The above exception was the direct cause)"
)
# What is read of a message: its head and its tail (a traceback's cause is its last line). A
# 10 MB message costs its regular expressions no more than this.
_MAX_TEXT = 20_000


def _bounded(text: str) -> str:
    """``text`` as a plain ``str`` (not a user's subclass with methods of its own), its middle
    dropped when it is longer than anything a message could use."""
    text = str.__str__(text)
    half = _MAX_TEXT // 2
    return text if len(text) <= _MAX_TEXT else f"{text[:half]}\n…\n{text[-half:]}"


def _plain_lines(text: str) -> list[str]:
    """The lines of ``text`` that are neither native stack frames nor the frames of a Python
    traceback (its header, ``File "...", line N`` lines and the source lines under them)."""
    lines, in_frame = [], False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or _NATIVE_FRAME.match(raw) or _TRACEBACK_LINE.match(line) or _FRAME.match(line):
            in_frame = bool(_FRAME.match(line))
            continue
        if in_frame and raw[:1].isspace():
            continue  # the source line and carets a frame shows
        in_frame = False
        lines.append(line)
    return lines


def _without_traceback(text: str) -> str:
    """A traceback-shaped text reduced to its last line, where Python prints the exception."""
    if not _TRACEBACK.search(text):
        return text
    lines = _plain_lines(text)
    return lines[-1] if lines else ""


def scrub(message: str, limit: int = MAX_MESSAGE) -> str:
    """One short line free of local paths (``/opt/ml/models/x/model.pkl`` -> ``model.pkl``),
    tracebacks, memory addresses and the internal names of users' modules."""
    message = _without_traceback(_bounded(message))
    message = _USER_MODULE.sub(lambda m: "" if m.group(1) else USER_MODULE_PREFIX.rstrip("_"), message)
    message = _ADDRESS.sub("", message)
    message = _ABSOLUTE_PATH.sub(lambda m: m.group(0).rsplit("/", 1)[-1], message)
    message = _WINDOWS_PATH.sub("", message)
    message = " ".join(message.split())
    return message if len(message) <= limit else message[: limit - 1] + "…"


def _attribute(err: BaseException, name: str) -> Any:
    """``err.name`` or None: a user's exception may make reading it raise anything."""
    try:
        return getattr(err, name, None)
    except BaseException:  # noqa: BLE001 - a property of user code; describing must go on
        return None


def _type_name(err: BaseException) -> str:
    """The exception's class name, the message of last resort (a user's class name is theirs)."""
    try:
        name = type(err).__name__
        return scrub(name, 100) if isinstance(name, str) and name.strip() else "Exception"
    except BaseException:  # noqa: BLE001
        return "Exception"


def _text(err: BaseException) -> str:
    """The raw text of an exception: its ``message`` when that is a non-empty string (the
    toolkit's errors), else ``str(err)``; "" when neither can be had (a ``__str__`` that raises)."""
    message = _attribute(err, "message")
    if isinstance(message, str) and message.strip():
        return _bounded(message)
    try:
        text = str(err)
    except BaseException:  # noqa: BLE001 - a user's __str__
        return ""
    return _bounded(text)


def _useful_line(err: BaseException, limit: int) -> str:
    """The line of ``err``'s text a client needs (see ``short``), or "" when it has none."""
    text = _text(err)
    lines = _plain_lines(text)
    if not lines:
        return ""
    causes = [line for line in lines if _CAUSE.match(line)]
    if len(lines) > 1 and causes:
        text = causes[-1]
    else:
        text = lines[-1] if _TRACEBACK.search(text) else lines[0]
    text = _CAUSE.sub("", text)
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)
    return scrub(text, limit)


def short(err: BaseException, limit: int = 300) -> str:
    """The useful line of a framework's error: no traceback, no native frames, not too long.

    TorchScript, ONNX Runtime, TensorFlow and XGBoost put a traceback, a node description or
    native stack frames around the cause; the last ``SomeError: ...`` line, else the first
    line that is not a frame (the last, in a Python traceback), is what the client needs. Never
    raises: an exception with nothing readable is named by its type.
    """
    try:
        return _useful_line(err, limit) or _type_name(err)
    except BaseException:  # noqa: BLE001 - a message must come out of any exception
        return _type_name(err)


def _toolkit_unsupported_format() -> type | None:
    """The sagemaker-inference toolkit's UnsupportedFormatError (no status of its own: 415),
    looked up only if user code imported the toolkit, so a worker never pays for its import."""
    module = sys.modules.get("sagemaker_inference.errors")
    unsupported = getattr(module, "UnsupportedFormatError", None)
    return unsupported if isinstance(unsupported, type) else None


def _error_status(value: Any) -> int | None:
    """``value`` when it is an HTTP error status (an int, not a bool, 400 to 599), else None."""
    if isinstance(value, int) and not isinstance(value, bool) and 400 <= value <= 599:
        return int(value)
    return None


def _ours(err: ServingError) -> ServingError:
    """One of ours as it is, or rebuilt when its fields are not what a reply can carry (a
    user's subclass may set anything, a message may hold a path)."""
    fields = _attribute(err, "status"), _attribute(err, "type"), _attribute(err, "message")
    status = _error_status(fields[0]) or 500
    kind = fields[1] if isinstance(fields[1], str) and fields[1] else None
    message = scrub(_text(err)) or _type_name(err)
    if (status, kind, message) == fields:
        return err
    return ServingError(message, status, kind)


def _describe(err: BaseException) -> ServingError:
    if isinstance(err, ServingError):
        return _ours(err)
    unsupported = _toolkit_unsupported_format()
    if unsupported is not None and isinstance(err, unsupported):
        return UnsupportedContentType(scrub(_text(err)) or _type_name(err))
    status = _error_status(_attribute(err, "status_code"))
    if status is not None:
        return ServingError(scrub(_text(err)) or _type_name(err), status)
    if isinstance(err, MemoryError):
        line = _useful_line(err, MAX_MESSAGE)
        return InsufficientMemory(f"out of memory: {line}" if line else "out of memory")
    line, name = _useful_line(err, MAX_MESSAGE), _type_name(err)
    return ServingError(scrub(f"{name}: {line}" if line else name), 500)


def describe(err: BaseException) -> ServingError:
    """The ``ServingError`` a raised exception stands for; never raises, whatever ``err`` is.

    Ours as they are; anything with an integer ``status_code`` (the toolkit's errors) keeps it;
    the toolkit's UnsupportedFormatError is a 415; ``MemoryError`` is a 507 (the platform frees
    memory and retries); anything else a 500 naming the exception. A user's exception may break
    anything it defines (``__str__``, ``message``, ``status_code``): the worker still owes the
    client an answer, so the last resort is the exception's type name.
    """
    try:
        return _describe(err)
    except BaseException:  # noqa: BLE001 - the reply of a failed request must still be made
        return ServingError(_type_name(err), 500)
