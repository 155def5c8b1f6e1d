"""The per-request context handed to handlers and to users' hooks.

Shaped like the context of the AWS framework containers, so user code written for them works:
``context.system_properties["model_dir"]``, ``context.get_request_header(0, name)``,
``context.set_response_header(0, name, value)``, and the custom attributes both ways.
"""

from dataclasses import dataclass, field
from typing import Any

from handlers.errors import ServingError

CUSTOM_ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"


def _header_problem(name: object, value: object) -> str | None:
    """What makes ``name: value`` no header (both must be str; HTTP's own rules are the
    front's, which drops what it cannot carry), or None."""
    if not isinstance(name, str):
        return f"a response header name of type {type(name).__name__}; expected str"
    if not isinstance(value, str):
        return f"response header {name!r} with a value of type {type(value).__name__}; expected str"
    return None


def checked_headers(headers: object) -> dict[str, str]:
    """The response headers user code left on its context, as a reply carries them: a dict of
    str to str. Raises ServingError (a 500 of this request alone) naming the first that is not."""
    if not isinstance(headers, dict):
        raise ServingError(f"the context's response headers are a {type(headers).__name__}; expected a dict")
    for name, value in headers.items():
        problem = _header_problem(name, value)
        if problem is not None:
            raise ServingError(f"user code set {problem}")
    return {str.__str__(name): str.__str__(value) for name, value in headers.items()}


@dataclass
class Context:
    model_dir: str
    default_accept: str
    request_headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    response_headers: dict[str, str] = field(default_factory=dict)

    @property
    def system_properties(self) -> dict[str, Any]:
        return {"model_dir": self.model_dir, "gpu_id": None}

    @property
    def custom_attributes(self) -> str | None:
        return self.request_headers.get(CUSTOM_ATTRIBUTES.lower())

    @property
    def response_custom_attributes(self) -> str | None:
        return self.response_headers.get(CUSTOM_ATTRIBUTES.lower())

    @response_custom_attributes.setter
    def response_custom_attributes(self, value: str) -> None:
        self.set_response_header(0, CUSTOM_ATTRIBUTES, value)

    # The multi-model-server context API (batch index ``idx`` is always 0 here).
    def get_request_header(self, idx: int, key: str) -> str | None:
        return self.request_headers.get(key.lower())

    def get_all_request_header(self, idx: int = 0) -> dict[str, str]:
        return dict(self.request_headers)

    def set_response_header(self, idx: int, key: str, value: str) -> None:
        """Refuses what is not str at once (TypeError), so the user's log shows their own line."""
        problem = _header_problem(key, value)
        if problem is not None:
            raise TypeError(f"set_response_header got {problem}")
        self.response_headers[key.lower()] = value

    def custom_attribute(self, name: str) -> str | None:
        """One ``name=value`` pair of the custom attributes (``tfs-signature=...`` style)."""
        for part in (self.custom_attributes or "").split(","):
            key, _, value = part.partition("=")
            if key.strip() == name:
                return value.strip()
        return None
