"""A loaded model and the request path through it: the one pipeline every request takes.

The worker calls ``load`` and ``ServedModel.answer_all`` and nothing else. A request is decoded,
predicted and encoded (or handed whole to the user's ``transform_fn``); each step is the user's
hook when ``code/inference.py`` defines it, else the framework's own. The worker hands over
requests to one model in groups (``server.worker.inbox``); a group's predictions go through the model's
``handlers.batching.group.Batcher`` when it has one, so they may share one predict call, while
decoding and encoding stay each request's own.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import handlers
from handlers import tfs_hooks, user_code
from handlers.base import Framework, code_for
from handlers.batching.group import Batcher, Outcome
from handlers.batching.rows import USER_SPEC, BatchSpec
from handlers.batching.settings import BatchSettings, settings
from handlers.context import Context, checked_headers
from handlers.errors import ModelLoadError, ServingError


@dataclass(frozen=True)
class Answer:
    body: bytes
    content_type: str
    headers: dict[str, str]
    batch: int  # how many requests shared this one's predict call (1: predicted alone)


_UNANSWERED = RuntimeError("no answer was made for this request")  # replaced for every request below


class ServedModel:
    """A model in memory with the steps (user hooks or framework defaults) that serve it."""

    def __init__(
        self, model: Any, model_dir: Path, default_accept: str, framework: Framework, hooks: user_code.UserHooks,
        batch: BatchSettings | None = None,
    ):
        self.model = model
        self.model_dir = str(model_dir)
        self.default_accept = default_accept
        self.framework = framework
        self.hooks = hooks
        batch = batch or BatchSettings()
        spec = batch_spec(framework, hooks, batch)
        self.batcher = None if spec is None else Batcher(self.model_dir, self._predict, spec, model, batch)

    @property
    def batch_settings(self) -> BatchSettings | None:
        """How the worker may group this model's requests: None when they must run one by one."""
        return None if self.batcher is None or not self.batcher.enabled else self.batcher.config

    def answer(self, body: bytes, headers: dict[str, str]) -> Answer:
        """Answer one request (``headers`` lower-case); raises what it met."""
        (answer,) = self.answer_all([(body, headers)])
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def answer_all(self, requests: list[tuple[bytes, dict[str, str]]]) -> list[Answer | BaseException]:
        """Answer a group of requests (body, lower-case headers), each with its answer or the error
        it met: decoded one by one, predicted together where they merge, encoded one by one."""
        hooks, framework = self.hooks, self.framework
        results: list[Answer | BaseException] = [_UNANSWERED] * len(requests)
        decoded: list[tuple[int, Any, Context]] = []
        for index, (body, headers) in enumerate(requests):
            context = Context(self.model_dir, self.default_accept, headers)
            content_type = headers.get("content-type")
            try:
                if hooks.transform_fn is not None:
                    result = hooks.transform_fn(context, self.model, user_code.body_for_user(body, content_type),
                                                content_type, headers.get("accept"))
                    encoded = user_code.as_response(result, headers.get("accept"), context, "transform_fn")
                    results[index] = self._answer(encoded, context, 1)
                elif hooks.input_fn is not None:
                    decoded.append((index, hooks.input_fn(context, user_code.body_for_user(body, content_type), content_type), context))
                else:
                    decoded.append((index, framework.decode(body, content_type, context), context))
            except BaseException as err:  # noqa: BLE001 - this request's own error
                results[index] = err
        if self.batcher is not None and len(decoded) > 1:
            outcomes = self.batcher.predict([(data, context) for _, data, context in decoded])
        else:
            outcomes = [self._predict_alone(data, context) for _, data, context in decoded]
        for (index, _, context), outcome in zip(decoded, outcomes):
            if outcome.error is not None:
                results[index] = outcome.error
                continue
            accept = requests[index][1].get("accept")
            try:
                if hooks.output_fn is not None:
                    encoded = user_code.as_response(hooks.output_fn(context, outcome.value, accept), accept, context, "output_fn")
                else:
                    encoded = framework.encode(outcome.value, accept, context)
                results[index] = self._answer(encoded, context, outcome.size)
            except BaseException as err:  # noqa: BLE001
                results[index] = err
        return results

    @staticmethod
    def _answer(encoded: tuple[bytes, str], context: Context, batch: int) -> Answer:
        """The Answer of one request, checked: the worker serialises its fields with no more
        checks, and a wrong type found there would fail the whole group, not this request."""
        body, content_type = encoded
        if isinstance(body, (bytearray, memoryview)):
            body = bytes(body)
        if not isinstance(body, bytes) or not isinstance(content_type, str):
            raise ServingError(f"the answer's body is {type(body).__name__} and its content type "
                               f"{type(content_type).__name__}; expected bytes and str")
        return Answer(body, content_type, checked_headers(context.response_headers), batch)

    def _predict_alone(self, data: Any, context: Context) -> Outcome:
        try:
            return Outcome(self._predict(data, context))
        except BaseException as err:  # noqa: BLE001
            return Outcome(error=err)

    def _predict(self, data: Any, context: Context) -> Any:
        if self.hooks.predict_fn is not None:
            return self.hooks.predict_fn(context, data, self.model)
        return self.framework.predict(self.model, data, context)


def batch_spec(framework: Framework, hooks: user_code.UserHooks, config: BatchSettings) -> BatchSpec | None:
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
    batch = settings(model_dir, batching_defaults)
    module = None
    code = code_for(model_dir, program, shared_code)
    if code is not None:
        packages = user_code.install_requirements(model_dir, packages_root, code)
        module = user_code.import_user_module(model_dir, program, packages, code)
    hooks = tfs_hooks.adapt(module, user_code.find_hooks(module), framework, model_dir)  # TF Serving container scripts
    if hooks.model_fn is not None:
        model = hooks.model_fn(Context(str(model_dir), default_accept), str(model_dir))
    else:
        artifact = framework.find(model_dir)
        if artifact is None:
            raise ModelLoadError(f"no {framework.name} model file found ({', '.join(framework.patterns)})")
        model = framework.load(artifact)
    return ServedModel(model, model_dir, default_accept, framework, hooks, batch)
