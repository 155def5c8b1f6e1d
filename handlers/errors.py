"""Errors that carry the HTTP status a client should see.

Handlers and codecs raise these for problems the caller caused (a body that does not decode, a
type nobody can produce); the worker turns any of them, and any exception with an integer
``status_code`` (the sagemaker-inference toolkit's errors), into a status and a short message.
"""


class ModelError(Exception):
    """A failure with an HTTP status code and a message fit for the client."""

    status_code = 500

    def __init__(self, message: str, status_code: int | None = None):
        super().__init__(message)
        if status_code is not None:
            self.status_code = status_code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class BadInput(ModelError):
    """The request body could not be decoded or has the wrong shape (400)."""

    status_code = 400


class UnsupportedContentType(ModelError):
    """No decoder for the request's Content-Type (415)."""

    status_code = 415


class NotAcceptable(ModelError):
    """No encoder for any type the Accept header allows (406)."""

    status_code = 406


class ModelLoadError(ModelError):
    """The model directory cannot be loaded: the user's fault, so a 4xx unless stated otherwise."""

    status_code = 400
