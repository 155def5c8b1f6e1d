"""Failures as the client sees them: a status code and one short, path-free message.

Every error body is ``{"error": "...", "code": N}`` (CONTRACT.md §5). Messages never carry a
traceback, and absolute paths are cut to their last part: the log has the detail.
"""

import re

MAX_MESSAGE = 600
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])(?:/[^\s/'\"<>|:,;()\[\]]+){2,}")


class ServingError(Exception):
    """A request the front answers with ``status`` and ``message``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def scrub(message: str) -> str:
    """Keep a message short and free of local paths (``/opt/ml/models/x/model.pkl`` -> ``model.pkl``)."""
    message = _ABSOLUTE_PATH.sub(lambda m: m.group(0).rsplit("/", 1)[-1], message)
    message = " ".join(message.split())
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 1] + "…"
    return message


def describe_exception(err: BaseException) -> tuple[int, str]:
    """The status and message a raised exception stands for.

    Our own ``ModelError`` and the sagemaker-inference toolkit's errors carry a ``status_code``;
    ``MemoryError`` is 507 (the platform frees memory and retries); anything else is a 500
    naming the exception.
    """
    status = getattr(err, "status_code", None)
    if type(err).__name__ == "UnsupportedFormatError":  # the toolkit's decoder/encoder: no status of its own
        status = 415
    if isinstance(err, MemoryError):
        status, text = 507, f"out of memory: {err}" if str(err) else "out of memory"
    elif isinstance(status, int) and 400 <= status <= 599:
        text = getattr(err, "message", None) or str(err) or type(err).__name__
    else:
        status = 500
        text = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
    return status, scrub(str(text))
