"""The invoke path as plain ASGI: the one route whose cost is paid on every prediction.

Profiled at 8 clients, half of the front's time per request went to Starlette's router,
middleware stack and response objects. ``InvokeFastPath`` answers ``POST /invocations``
(single-model) and ``POST /models/{name}/invoke`` (multi-model) itself — read the body, call
the service, send the worker's bytes — and hands every other request to the Starlette app,
which keeps the rest of the contract (and the 404s of the wrong mode).
"""

import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from handlers.errors import BadInput, ServingError
from server.config import Settings
from server.front.service import SINGLE_MODEL_NAME, ModelService

log = logging.getLogger("front")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

FORWARDED = (b"content-type", b"accept")  # and every X-Amzn-* header: the rest stays in the front
MODELS, INVOKE = "/models/", "/invoke"
# Response headers that frame the message are the server's: one set by user code would break it.
FRAMING = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer"})
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")  # no CR, LF or other controls; Latin-1 only


class InvokeFastPath:
    def __init__(self, app: ASGIApp, settings: Settings, service: ModelService):
        self.app = app
        self.settings = settings
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            name = self.model_name(scope["path"])
            if name is not None:
                await self.invoke(name, scope, receive, send)
                return
        await self.app(scope, receive, send)

    def model_name(self, path: str) -> str | None:
        """The model a path invokes in this mode, or None for the router to answer."""
        if not self.settings.multi_model:
            return SINGLE_MODEL_NAME if path == "/invocations" else None
        if path.startswith(MODELS) and path.endswith(INVOKE):
            name = path[len(MODELS):-len(INVOKE)]
            if name and "/" not in name:
                return name
        return None

    async def invoke(self, name: str, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            headers: dict[str, str] = {}
            length = None
            for key, value in scope["headers"]:
                if key == b"content-length":
                    length = value
                elif key in FORWARDED or key.startswith(b"x-amzn-"):
                    headers[key.decode("latin-1")] = value.decode("latin-1")
            body = await read_body(receive, length, self.settings.max_payload_bytes)
            reply, out = await self.service.invoke(name, body, headers)
            content_type = reply.get("content_type") or "application/octet-stream"
            if not (isinstance(content_type, str) and _FIELD_VALUE.fullmatch(content_type)):
                raise ServingError("the model answered with a Content-Type that HTTP cannot carry", 500)
        except ServingError as err:
            await respond(send, err.status, orjson.dumps(err.body()), "application/json")
            return
        except Exception as err:  # noqa: BLE001 - a bug of ours must still answer JSON
            log.exception("unexpected error invoking %r", name)
            failure = ServingError(f"internal error: {type(err).__name__}", 500)
            await respond(send, 500, orjson.dumps(failure.body()), "application/json")
            return
        await respond(send, 200, out, content_type, carried_headers(reply.get("headers")))


async def read_body(receive: Receive, length: bytes | None, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to pass ``limit``."""
    if length is not None:
        if not length.isdigit():
            raise BadInput("Content-Length is not a number")
        if int(length) > limit:
            raise ServingError(f"request body of {int(length)} bytes exceeds the {limit}-byte limit", 413)
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ServingError("the client went away before sending the whole body", 400)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ServingError(f"request body exceeds the {limit}-byte limit", 413)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def carried_headers(headers: dict[str, str] | None) -> dict[str, str]:
    """The response headers of a model (its user code's ``context.set_response_header``) that
    HTTP can carry. A CR/LF would split the response (uvicorn then drops the connection), a
    Content-Length would contradict the body: such headers are dropped, and logged."""
    carried = {}
    for name, value in (headers or {}).items():
        if not isinstance(name, str) or not isinstance(value, str) or not _TOKEN.fullmatch(name) \
                or not _FIELD_VALUE.fullmatch(value) or name.lower() in FRAMING:
            log.warning("dropped response header %r set by the model: not a header HTTP can carry", name)
            continue
        carried[name] = value
    return carried


async def respond(send: Send, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
    headers = [(b"content-type", content_type.encode("latin-1")), (b"content-length", str(len(body)).encode())]
    headers += [(key.encode("latin-1"), value.encode("latin-1")) for key, value in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
