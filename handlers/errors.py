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

MAX_MESSAGE = 600

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


class ModelLoadError(ServingError):
    """The model directory cannot be loaded: the user's fault, so a 4xx unless stated otherwise."""

    status = 400
    type = "InvalidModelException"


# ---------------------------------------------------------------------------------- messages

_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])(?:/[^\s/'\"<>|:,;()\[\]]+){2,}")
_CAUSE = re.compile(r"^[A-Za-z_.]*(?:Error|Exception): ")
_NATIVE_FRAME = re.compile(r"^\s*(?:\[bt\]|Stack trace:|frame #\d+:|#\d+ 0x)")


def scrub(message: str, limit: int = MAX_MESSAGE) -> str:
    """One short line free of local paths (``/opt/ml/models/x/model.pkl`` -> ``model.pkl``)."""
    message = _ABSOLUTE_PATH.sub(lambda m: m.group(0).rsplit("/", 1)[-1], message)
    message = " ".join(message.split())
    return message if len(message) <= limit else message[: limit - 1] + "…"


def short(err: BaseException, limit: int = 300) -> str:
    """The useful line of a framework's error: no traceback, no native frames, not too long.

    TorchScript, ONNX Runtime, TensorFlow and XGBoost put a traceback, a node description or
    native stack frames around the cause; the last ``SomeError: ...`` line, else the first
    line that is not a native frame, is what the client needs.
    """
    text = getattr(err, "message", None)
    text = text if isinstance(text, str) and text else str(err)
    lines = [line.strip() for line in text.splitlines() if line.strip() and not _NATIVE_FRAME.match(line)]
    if not lines:
        return type(err).__name__
    causes = [line for line in lines if _CAUSE.match(line)]
    text = causes[-1] if len(lines) > 1 and causes else lines[0]
    text = _CAUSE.sub("", text)
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)
    return scrub(text, limit)


def _toolkit_unsupported_format() -> type | None:
    """The sagemaker-inference toolkit's UnsupportedFormatError (no status of its own: 415),
    looked up only if user code imported the toolkit, so a worker never pays for its import."""
    module = sys.modules.get("sagemaker_inference.errors")
    return getattr(module, "UnsupportedFormatError", None)


def describe(err: BaseException) -> ServingError:
    """The ``ServingError`` a raised exception stands for.

    Ours as they are; anything with an integer ``status_code`` (the toolkit's errors) keeps it;
    the toolkit's UnsupportedFormatError is a 415; ``MemoryError`` is a 507 (the platform frees
    memory and retries); anything else a 500 naming the exception.
    """
    if isinstance(err, ServingError):
        return err if err.message == scrub(err.message) else type(err)(scrub(err.message), err.status, err.type)
    unsupported = _toolkit_unsupported_format()
    if unsupported is not None and isinstance(err, unsupported):
        return UnsupportedContentType(scrub(str(err)))
    status = getattr(err, "status_code", None)
    if isinstance(status, int) and not isinstance(status, bool) and 400 <= status <= 599:
        text = getattr(err, "message", None) or str(err) or type(err).__name__
        return ServingError(scrub(str(text)), status)
    if isinstance(err, MemoryError):
        return InsufficientMemory(scrub(f"out of memory: {err}" if str(err) else "out of memory"))
    text = f"{type(err).__name__}: {short(err, MAX_MESSAGE)}" if str(err) else type(err).__name__
    return ServingError(scrub(text), 500)
