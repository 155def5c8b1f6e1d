"""Scripts written for the AWS TensorFlow Serving container (the SDK's ``TensorFlowModel``).

Their ``code/inference.py`` defines ``input_handler(data, context)`` and
``output_handler(response, context)``, or one ``handler(data, context)`` (which wins, as there).
``data`` is the request body as a stream (``data.read()`` gives bytes); ``context`` is the
container's ``Context`` named tuple: ``model_name``, ``model_version``, ``method`` (the
``tfs-model-name``, ``tfs-model-version`` and ``tfs-method`` custom attributes, None when not
sent), ``rest_uri``, ``grpc_port``, ``channel``, ``custom_attributes``, ``request_content_type``
and ``accept_header`` (``application/json`` when not sent), ``content_length``.

There, the container posts what ``input_handler`` returns to TF Serving's REST predict and hands
the ``requests.Response`` to ``output_handler``, which returns ``(body, content_type)``. There is
no TF Serving process here: what ``input_handler`` returns (the REST request body, str or bytes)
goes through the TensorFlow handler's own TF Serving REST predict, in this worker
(``{"instances"}``/``{"inputs"}`` in, ``{"predictions"}``/``{"outputs"}`` out, ``{"error": ...}``
with a 4xx status for a bad request), and ``output_handler`` gets a real ``requests.Response``
holding that answer. ``context.rest_uri`` is a real URL too, the worker's loopback TF Serving
REST predict (``handlers.tfs_rest``): a ``handler`` that posts to it is answered the same way.
gRPC is not served: ``grpc_port`` and ``channel`` are None.

A model's TF Serving hooks become its ``transform_fn`` (they take whole requests; nothing is
batched across requests). They are for TensorFlow models, and not mixed with the SageMaker
toolkit's ``input_fn``/``predict_fn``/``output_fn``/``transform_fn`` (``model_fn`` may load the model).
"""

import dataclasses
import hashlib
import http
import io
import re
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

from handlers import tfs_rest
from handlers.base import Framework
from handlers.codecs import media
from handlers.context import CUSTOM_ATTRIBUTES, Context
from handlers.describe import describe
from handlers.errors import ModelLoadError
from handlers.user_code import UserHooks, as_response

HOOKS = ("handler", "input_handler", "output_handler")
TOOLKIT_HOOKS = ("input_fn", "predict_fn", "output_fn", "transform_fn")
_TFS_ATTRIBUTE = re.compile(r"(tfs-[a-z\-]+=[^,]+)")  # as the container parses the custom attributes


class TFSContext(NamedTuple):
    """The AWS TF Serving container's ``Context``, field for field."""

    model_name: str | None
    model_version: str | None
    method: str | None
    rest_uri: str
    grpc_port: str | None
    channel: Any
    custom_attributes: str | None
    request_content_type: str
    accept_header: str
    content_length: int


def tfs_attributes(custom_attributes: str | None) -> dict[str, str]:
    """The ``tfs-*=value`` pairs of the custom attributes."""
    pairs = (match.split("=", 1) for match in _TFS_ATTRIBUTE.findall(custom_attributes or ""))
    return {key.strip(): value.strip() for key, value in pairs}


def response(status: int, body: bytes, url: str) -> Any:
    """A ``requests.Response`` holding a TF Serving REST answer, as ``output_handler`` gets it."""
    import requests

    answer = requests.models.Response()
    answer.status_code = status
    answer._content = body
    answer.headers = requests.structures.CaseInsensitiveDict({"Content-Type": media.JSON})
    answer.url = url
    answer.encoding = "utf-8"
    answer.reason = http.HTTPStatus(status).phrase
    return answer


def _request_body(processed: Any) -> bytes | None:
    """What ``input_handler`` returned as the REST request body, or None when it is not one."""
    if processed is None:
        return b""
    if isinstance(processed, str):
        return processed.encode()
    if isinstance(processed, (bytes, bytearray, memoryview)):
        return bytes(processed)
    return None


class TFSHooks:
    """A model's TF Serving hooks as its ``transform_fn``, and its loopback REST endpoint."""

    def __init__(self, framework: Framework, model_dir: Path, hooks: dict[str, Any]):
        self.framework = framework
        self.model_dir = model_dir
        self.handler: Any = hooks.get("handler")  # handler wins, as in the container
        self.input_handler: Any = hooks.get("input_handler")
        self.output_handler: Any = hooks.get("output_handler")
        # The model's name in its rest_uri: unique in the worker, free of the local path.
        self.key = "model-" + hashlib.sha256(f"{model_dir}:{id(self)}".encode()).hexdigest()[:12]
        self.model: Any = None

    def rest(self, body: bytes, custom_attributes: str | None, method: str) -> tuple[int, bytes]:
        """TF Serving's REST predict on this model: the framework's own decode, predict and encode."""
        if method != "predict":
            return tfs_rest.error(400, f":{method} is not served; only :predict is")
        headers = {CUSTOM_ATTRIBUTES.lower(): custom_attributes} if custom_attributes else {}
        context = Context(str(self.model_dir), media.JSON, headers)
        try:
            request = self.framework.decode(body, media.JSON, context)
            result = self.framework.predict(self.model, request, context)
            answer, _ = self.framework.encode(result, media.JSON, context)
        except Exception as err:  # noqa: BLE001 - TF Serving answers every failure as {"error": ...}
            failure = describe(err)
            return tfs_rest.error(failure.status, failure.message)
        return 200, answer

    def _context(self, context: Context, content_type: str | None, accept: str | None, length: int) -> TFSContext:
        attributes = tfs_attributes(context.custom_attributes)
        name, version, method = (attributes.get(f"tfs-{key}") for key in ("model-name", "model-version", "method"))
        base = tfs_rest.register(self.key, self)
        uri = f"{base}/v1/models/{self.key}" + (f"/versions/{version}" if version else "") + f":{method or 'predict'}"
        return TFSContext(name, version, method, uri, None, None, context.custom_attributes,
                          content_type or media.JSON, accept or media.JSON, length)

    def __call__(self, context: Context, model: Any, body: str | bytes, content_type: str | None,
                 accept: str | None) -> tuple[bytes, str]:
        self.model = model
        raw = body.encode() if isinstance(body, str) else body  # JSON and CSV come decoded: undone
        tfs_context = self._context(context, content_type, accept, len(raw))
        if self.handler is not None:
            return as_response(self.handler(io.BytesIO(raw), tfs_context), accept, context, "handler")
        processed = self.input_handler(io.BytesIO(raw), tfs_context)
        request = _request_body(processed)
        if request is None:
            status, answer = tfs_rest.error(400, f"input_handler returned {type(processed).__name__}; it must return "
                                                 "the TF Serving REST request body as str or bytes (json.dumps it)")
        else:
            status, answer = self.rest(request, context.custom_attributes, tfs_context.method or "predict")
        result = self.output_handler(response(status, answer, tfs_context.rest_uri), tfs_context)
        return as_response(result, accept, context, "output_handler")


def adapt(module: ModuleType | None, hooks: UserHooks, framework: Framework, model_dir: Path) -> UserHooks:
    """``hooks`` with a ``transform_fn`` serving the module's TF Serving hooks; unchanged when it has none."""
    found = {name: getattr(module, name) for name in HOOKS if callable(getattr(module, name, None))}
    if not found:
        return hooks
    names = ", ".join(found)
    if framework.name != "tensorflow":
        raise ModelLoadError(f"code/inference.py defines {names}, the TF Serving container's hooks, which serve "
                             f"TensorFlow models; this model is served by {framework.name}: use input_fn, predict_fn "
                             "and output_fn")
    mixed = [name for name in TOOLKIT_HOOKS if getattr(hooks, name) is not None]
    if mixed:
        raise ModelLoadError(f"code/inference.py defines {names} (the TF Serving container's hooks) together with "
                             f"{', '.join(mixed)}; define one set")
    if "handler" not in found and len(found) != 2:
        raise ModelLoadError(f"code/inference.py defines {names} alone; the TF Serving container's hooks are "
                             "input_handler and output_handler together, or handler")
    return dataclasses.replace(hooks, transform_fn=TFSHooks(framework, model_dir, found))
