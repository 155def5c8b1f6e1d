"""A loaded model and the request path through it: the one pipeline every request takes.

The worker calls ``load`` and ``ServedModel.answer`` and nothing else. A request is decoded,
predicted and encoded (or handed whole to the user's ``transform_fn``); each step is the user's
hook when ``code/inference.py`` defines it, else the framework's own. The predict step goes
through the model's ``handlers.batching.Batcher`` when it has one, so concurrent requests may
share one predict call; decoding and encoding stay each request's own.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import handlers
from handlers import batching, user_code
from handlers.base import Framework
from handlers.context import Context
from handlers.errors import ModelLoadError
from handlers.rows import USER_SPEC, BatchSpec


@dataclass(frozen=True)
class Answer:
    body: bytes
    content_type: str
    headers: dict[str, str]
    batch: int  # how many requests shared this one's predict call (1: predicted alone)


class ServedModel:
    """A model in memory with the steps (user hooks or framework defaults) that serve it."""

    def __init__(
        self, model: Any, model_dir: Path, default_accept: str, framework: Framework, hooks: user_code.UserHooks,
        batch: batching.BatchSettings | None = None,
    ):
        self.model = model
        self.model_dir = str(model_dir)
        self.default_accept = default_accept
        self.framework = framework
        self.hooks = hooks
        batch = batch or batching.BatchSettings()
        spec = batch_spec(framework, hooks, batch)
        self.batcher = None if spec is None else batching.Batcher(self.model_dir, self._predict, spec, model, batch)

    def answer(self, body: bytes, headers: dict[str, str]) -> Answer:
        """Answer one request: body, content type, response headers, and how many requests shared
        its predict call. ``headers`` are lower-case."""
        context = Context(self.model_dir, self.default_accept, headers)
        out, content_type, batch = self._run(body, headers.get("content-type"), headers.get("accept"), context)
        return Answer(out, content_type, context.response_headers, batch)

    def _predict(self, data: Any, context: Context) -> Any:
        if self.hooks.predict_fn is not None:
            return self.hooks.predict_fn(context, data, self.model)
        return self.framework.predict(self.model, data, context)

    def _run(self, body: bytes, content_type: str | None, accept: str | None, context: Context) -> tuple[bytes, str, int]:
        hooks, framework, model = self.hooks, self.framework, self.model
        if hooks.transform_fn is not None:
            result = hooks.transform_fn(context, model, user_code.body_for_user(body, content_type), content_type, accept)
            return *user_code.as_response(result, accept, context), 1
        if hooks.input_fn is not None:
            data = hooks.input_fn(context, user_code.body_for_user(body, content_type), content_type)
        else:
            data = framework.decode(body, content_type, context)
        if self.batcher is not None:
            prediction, batch = self.batcher.predict(data, context)
        else:
            prediction, batch = self._predict(data, context), 1
        if hooks.output_fn is not None:
            return *user_code.as_response(hooks.output_fn(context, prediction, accept), accept, context), batch
        return *framework.encode(prediction, accept, context), batch


def batch_spec(framework: Framework, hooks: user_code.UserHooks, config: batching.BatchSettings) -> BatchSpec | None:
    """How this model's requests merge, or None when they must not: batching is off for it, the
    user's code answers whole requests (``transform_fn``), or the user's ``predict_fn`` was not
    declared batchable (``batchable = True`` in the module, or ``"enabled": true`` in batching.json)."""
    if config.enabled is False or config.max_batch_size <= 1 or hooks.transform_fn is not None:
        return None
    if hooks.predict_fn is not None:
        return USER_SPEC if hooks.batchable or config.enabled else None
    return framework.batch


def load(
    model_dir: Path, framework_name: str, default_accept: str, program: str, packages_root: Path,
    shared_code: Path | None = None, batching_defaults: Mapping[str, float] | None = None,
) -> ServedModel:
    """Load the model in ``model_dir`` with the framework the front chose for it, and its user code:
    its own ``code/``, else ``shared_code`` (SAGEMAKER_SUBMIT_DIRECTORY).

    A user's ``model_fn`` wins over the framework's loader even when the files are recognised.
    ``batching_defaults`` are the server's (``WorkerConfig.batching``); ``batching.json`` in the
    model directory overrides them.
    """
    framework = handlers.get(framework_name)
    batch = batching.settings(model_dir, batching_defaults)
    module = None
    code = user_code.code_for(model_dir, program, shared_code)
    if code is not None:
        packages = user_code.install_requirements(model_dir, packages_root, code)
        module = user_code.import_user_module(model_dir, program, packages, code)
    hooks = user_code.find_hooks(module)
    if hooks.model_fn is not None:
        model = hooks.model_fn(Context(str(model_dir), default_accept), str(model_dir))
    else:
        artifact = framework.find(model_dir)
        if artifact is None:
            raise ModelLoadError(f"no {framework.name} model file found ({', '.join(framework.patterns)})")
        model = framework.load(artifact)
    return ServedModel(model, model_dir, default_accept, framework, hooks, batch)
