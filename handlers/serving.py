"""A loaded model and the request path through it: decode, predict, encode.

This is the one place that knows the order of the steps; the worker calls ``load`` and
``ServedModel.invoke`` and nothing else, so user hooks can replace any step without the worker
knowing.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import handlers
from handlers.base import Framework
from handlers.errors import ModelLoadError


@dataclass
class Request:
    body: bytes
    content_type: str | None
    accept: str | None
    custom_attributes: str | None = None


@dataclass
class Response:
    body: bytes
    content_type: str
    custom_attributes: str | None = None


class ServedModel:
    """A model in memory with the framework functions that serve it."""

    def __init__(self, framework: Framework, model: Any, model_dir: Path, default_accept: str):
        self.framework = framework
        self.model = model
        self.model_dir = model_dir
        self.default_accept = default_accept

    def invoke(self, request: Request) -> Response:
        data = self.framework.decode(request.body, request.content_type)
        prediction = self.framework.predict(self.model, data)
        body, content_type = self.framework.encode(prediction, request.accept, self.default_accept)
        return Response(body, content_type)


def load(model_dir: Path, framework_name: str, default_accept: str) -> ServedModel:
    """Load the model in ``model_dir`` with the framework the front chose for it."""
    framework = handlers.get(framework_name)
    artifact = framework.find(model_dir)
    if artifact is None:
        raise ModelLoadError(f"no {framework.name} model file found ({', '.join(framework.patterns)})")
    model = framework.load(artifact)
    return ServedModel(framework, model, model_dir, default_accept)
