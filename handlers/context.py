"""The per-request context handed to handlers and to users' hooks.

Shaped like the context of the AWS framework containers, so user code written for them works:
``context.system_properties["model_dir"]``, ``context.get_request_header(0, name)``,
``context.set_response_header(0, name, value)``, and the custom attributes both ways.
"""

from dataclasses import dataclass, field
from typing import Any

CUSTOM_ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"


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
        self.response_headers[CUSTOM_ATTRIBUTES.lower()] = value

    # The multi-model-server context API (batch index ``idx`` is always 0 here).
    def get_request_header(self, idx: int, key: str) -> str | None:
        return self.request_headers.get(key.lower())

    def get_all_request_header(self, idx: int = 0) -> dict[str, str]:
        return dict(self.request_headers)

    def set_response_header(self, idx: int, key: str, value: str) -> None:
        self.response_headers[key.lower()] = value

    def custom_attribute(self, name: str) -> str | None:
        """One ``name=value`` pair of the custom attributes (``tfs-signature=...`` style)."""
        for part in (self.custom_attributes or "").split(","):
            key, _, value = part.partition("=")
            if key.strip() == name:
                return value.strip()
        return None
