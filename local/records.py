"""What the control plane keeps of a model and an endpoint configuration, as CreateModel and
CreateEndpointConfig described them (the endpoint is built from both)."""

from dataclasses import dataclass
from typing import Any

from local.instances import ContainerSpec


@dataclass
class ModelRecord:
    name: str
    arn: str
    containers: list[ContainerSpec]
    mode: str  # Single, Direct or Serial
    description: dict[str, Any]


@dataclass
class ConfigRecord:
    name: str
    arn: str
    variants: list[dict[str, Any]]
    async_config: dict[str, Any] | None
    description: dict[str, Any]
