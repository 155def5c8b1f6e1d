"""A loaded model and the request path through it.

The worker calls ``load`` and ``ServedModel.invoke`` and nothing else. The steps of a request
(decode, predict, encode, or the user's ``transform_fn``) live in ``user_code.Hooks``: each
step is the user's hook if ``code/inference.py`` defines it, else the framework's own.
"""

from pathlib import Path
from typing import Any

import handlers
from handlers import user_code
from handlers.context import Context
from handlers.errors import ModelLoadError


class ServedModel:
    """A model in memory with the steps (user hooks or framework defaults) that serve it."""

    def __init__(self, model: Any, model_dir: Path, default_accept: str, hooks: user_code.Hooks):
        self.model = model
        self.model_dir = str(model_dir)
        self.default_accept = default_accept
        self.hooks = hooks

    def invoke(self, body: bytes, headers: dict) -> tuple[bytes, str, dict]:
        """Answer one request: (body, content type, response headers). ``headers`` are lower-case."""
        context = Context(self.model_dir, self.default_accept, headers)
        out, content_type = self.hooks.invoke(self.model, body, headers, context)
        return out, content_type, context.response_headers


def load(model_dir: Path, framework_name: str, default_accept: str, program: str, packages_root: Path) -> ServedModel:
    """Load the model in ``model_dir`` with the framework the front chose for it, and its user code."""
    framework = handlers.get(framework_name)
    module = None
    if user_code.has_user_code(model_dir, program):
        packages = user_code.install_requirements(model_dir, packages_root)
        module = user_code.import_user_module(model_dir, program, packages)
    hooks = user_code.Hooks(module, framework)
    if hooks.model_fn is not None:
        model = hooks.model_fn(Context(str(model_dir), default_accept), str(model_dir))
    else:
        artifact = framework.find(model_dir)
        if artifact is None:
            raise ModelLoadError(f"no {framework.name} model file found ({', '.join(framework.patterns)})")
        model = framework.load(artifact)
    return ServedModel(model, model_dir, default_accept, hooks)

