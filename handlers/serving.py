"""A loaded model and the request path through it: the one pipeline every request takes.

The worker calls ``load`` and ``ServedModel.invoke`` and nothing else. A request is decoded,
predicted and encoded (or handed whole to the user's ``transform_fn``); each step is the user's
hook when ``code/inference.py`` defines it, else the framework's own.
"""

from pathlib import Path
from typing import Any

import handlers
from handlers import user_code
from handlers.base import Framework
from handlers.context import Context
from handlers.errors import ModelLoadError


class ServedModel:
    """A model in memory with the steps (user hooks or framework defaults) that serve it."""

    def __init__(self, model: Any, model_dir: Path, default_accept: str, framework: Framework, hooks: user_code.UserHooks):
        self.model = model
        self.model_dir = str(model_dir)
        self.default_accept = default_accept
        self.framework = framework
        self.hooks = hooks

    def invoke(self, body: bytes, headers: dict[str, str]) -> tuple[bytes, str, dict[str, str]]:
        """Answer one request: (body, content type, response headers). ``headers`` are lower-case."""
        context = Context(self.model_dir, self.default_accept, headers)
        out, content_type = self._run(body, headers.get("content-type"), headers.get("accept"), context)
        return out, content_type, context.response_headers

    def _run(self, body: bytes, content_type: str | None, accept: str | None, context: Context) -> tuple[bytes, str]:
        hooks, framework, model = self.hooks, self.framework, self.model
        if hooks.transform_fn is not None:
            result = hooks.transform_fn(context, model, user_code.body_for_user(body, content_type), content_type, accept)
            return user_code.as_response(result, accept, context)
        if hooks.input_fn is not None:
            data = hooks.input_fn(context, user_code.body_for_user(body, content_type), content_type)
        else:
            data = framework.decode(body, content_type, context)
        if hooks.predict_fn is not None:
            prediction = hooks.predict_fn(context, data, model)
        else:
            prediction = framework.predict(model, data, context)
        if hooks.output_fn is not None:
            return user_code.as_response(hooks.output_fn(context, prediction, accept), accept, context)
        return framework.encode(prediction, accept, context)


def load(model_dir: Path, framework_name: str, default_accept: str, program: str, packages_root: Path) -> ServedModel:
    """Load the model in ``model_dir`` with the framework the front chose for it, and its user code.

    A user's ``model_fn`` wins over the framework's loader even when the files are recognised.
    """
    framework = handlers.get(framework_name)
    module = None
    if user_code.has_user_code(model_dir, program):
        packages = user_code.install_requirements(model_dir, packages_root)
        module = user_code.import_user_module(model_dir, program, packages)
    hooks = user_code.find_hooks(module)
    if hooks.model_fn is not None:
        model = hooks.model_fn(Context(str(model_dir), default_accept), str(model_dir))
    else:
        artifact = framework.find(model_dir)
        if artifact is None:
            raise ModelLoadError(f"no {framework.name} model file found ({', '.join(framework.patterns)})")
        model = framework.load(artifact)
    return ServedModel(model, model_dir, default_accept, framework, hooks)
