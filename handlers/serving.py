"""A loaded model and the request path through it: decode, predict, encode.

This is the one place that knows the order of the steps; the worker calls ``load`` and
``ServedModel.invoke`` and nothing else, so user hooks can replace any step without the worker
knowing.
"""

from pathlib import Path
from typing import Any

import handlers
from handlers.base import Framework
from handlers.context import Context
from handlers.errors import ModelLoadError
from handlers import user_code
from handlers.user_code import UserHooks


class ServedModel:
    """A model in memory with the framework functions (and user hooks, if any) that serve it."""

    def __init__(self, framework: Framework, model: Any, model_dir: Path, default_accept: str, hooks: UserHooks | None):
        self.framework = framework
        self.model = model
        self.model_dir = str(model_dir)
        self.default_accept = default_accept
        self.hooks = hooks

    def context(self, headers: dict) -> Context:
        return Context(self.model_dir, self.default_accept, headers)

    def invoke(self, body: bytes, headers: dict) -> tuple[bytes, str, dict]:
        """Answer one request: (body, content type, response headers). ``headers`` are lower-case."""
        context = self.context(headers)
        if self.hooks is not None:
            out, content_type = self.hooks.invoke(self.model, body, headers, context)
            return out, content_type, context.response_headers
        framework = self.framework
        data = framework.decode(body, headers.get("content-type"), context)
        prediction = framework.predict(self.model, data, context)
        out, content_type = framework.encode(prediction, headers.get("accept"), context)
        return out, content_type, context.response_headers


def load(model_dir: Path, framework_name: str, default_accept: str, program: str, packages_root: Path) -> ServedModel:
    """Load the model in ``model_dir`` with the framework the front chose for it, and its user code."""
    framework = handlers.get(framework_name)
    hooks = None
    if user_code.has_user_code(model_dir, program):
        packages = user_code.install_requirements(model_dir, packages_root)
        hooks = user_code.UserHooks(user_code.import_user_module(model_dir, program, packages), framework)
    if hooks is not None and hooks.model_fn is not None:
        model = hooks.model_fn(Context(str(model_dir), default_accept), str(model_dir))
    else:
        artifact = framework.find(model_dir)
        if artifact is None:
            raise ModelLoadError(f"no {framework.name} model file found ({', '.join(framework.patterns)})")
        model = framework.load(artifact)
    return ServedModel(framework, model, model_dir, default_accept, hooks)

