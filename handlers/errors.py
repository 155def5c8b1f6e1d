"""The one error vocabulary of the server: a failure with the HTTP status a client should see.

Everything that answers a request with an error raises a ``ServingError`` (or a subclass named
for its case): the front for routing, bodies and the registry, the handlers and codecs for bad
input, the worker for failed loads. It travels from a worker to the front as its status, type
and message, and leaves as the body clients of the AWS containers already parse (MMS,
TorchServe): ``{"code": N, "type": "ModelNotFoundException", "message": "..."}``.

Any other exception (a user's hook, a framework, the sagemaker-inference toolkit's errors with
their own ``status_code``) is turned into the same three fields by ``handlers.describe``, which
also keeps tracebacks and local paths out of every message.
"""

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
