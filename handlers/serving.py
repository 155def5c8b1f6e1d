"""A loaded model and the request path through it: decode, predict, encode.

This is the one place that knows the order of the steps; the worker calls ``load`` and
``ServedModel.invoke`` and nothing else, so user hooks can replace any step without the worker
knowing.
"""

from pathlib import Path
from typing import Any

import handlers
from handlers.base import Framework
from handlers.context import CUSTOM_ATTRIBUTES, Context
from handlers.errors import ModelLoadError


class ServedModel:
    """A model in memory with the framework functions that serve it."""

    def __init__(self, framework: Framework, model: Any, model_dir: Path, default_accept: str):
        self.framework = framework
        self.model = model
        self.model_dir = str(model_dir)
        self.default_accept = default_accept

    def context(self, headers: dict) -> Context:
        return Context(self.model_dir, self.default_accept, headers)

    def invoke(self, body: bytes, headers: dict) -> tuple[bytes, str, dict]:
        """Answer one request: (body, content type, response headers). ``headers`` are lower-case."""
        context = self.context(headers)
        framework = self.framework
        data = framework.decode(body, headers.get("content-type"), context)
        prediction = framework.predict(self.model, data, context)
        out, content_type = framework.encode(prediction, headers.get("accept"), context)
        return out, content_type, context.response_headers


def load(model_dir: Path, framework_name: str, default_accept: str) -> ServedModel:
    """Load the model in ``model_dir`` with the framework the front chose for it."""
    framework = handlers.get(framework_name)
    artifact = framework.find(model_dir)
    if artifact is None:
        raise ModelLoadError(f"no {framework.name} model file found ({', '.join(framework.patterns)})")
    return ServedModel(framework, framework.load(artifact), model_dir, default_accept)


__all__ = ["ServedModel", "load", "CUSTOM_ATTRIBUTES"]
