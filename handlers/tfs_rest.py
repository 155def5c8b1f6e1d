"""A loopback TF Serving REST predict URL in the worker, for the TF Serving container's scripts.

A ``handler(data, context)`` written for the AWS TensorFlow Serving container posts its request
to TF Serving itself: ``requests.post(context.rest_uri, data=...)``. There is no TF Serving
process here (the worker holds the model), so the worker answers that URL: ``POST
/v1/models/<id>[/versions/<n>]:predict`` on 127.0.0.1, on a port the kernel picks, one listener
per worker process, started when the first such model takes a request. Each registered model is
held weakly (an unloaded model's URL answers 404) and is answered by its framework's own
predict, never by the user's hooks again, so a request never loops back into itself.

Answers are TF Serving's: the JSON of the predict, or ``{"error": "..."}`` with the status a
request of the front would get. Only ``:predict`` is served (not ``:classify``/``:regress``, nor
the model-status GETs); a body is capped at the worker's decoded-input limit.
"""

import http
import logging
import re
import threading
import weakref
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

import orjson

from handlers.codecs import limits, media
from handlers.context import CUSTOM_ATTRIBUTES

log = logging.getLogger("handlers.tfs_rest")

_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+))?:(?P<method>[a-z]+)$")


class Endpoint(Protocol):
    """A served model as TF Serving's REST predict answers for it: (status, JSON body)."""

    def rest(self, body: bytes, custom_attributes: str | None, method: str) -> tuple[int, bytes]: ...


def error(status: int, message: str) -> tuple[int, bytes]:
    """An answer in TF Serving's error shape."""
    return status, orjson.dumps({"error": message})


_endpoints: "weakref.WeakValueDictionary[str, Endpoint]" = weakref.WeakValueDictionary()
_lock = threading.Lock()
_server: list[ThreadingHTTPServer] = []


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a script's requests.Session reuses its connection

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        found = _PATH.match(self.path.split("?", 1)[0])
        length = self.headers.get("Content-Length")
        if found is None:
            status, body = error(404, f"{self.path[:100]} is not /v1/models/<name>[/versions/<n>]:predict")
        elif length is None or not length.isdigit():
            status, body = error(411, "send the request body with a Content-Length")
        elif int(length) > limits.decoded_limit():
            status, body = error(413, f"the body is over {limits.decoded_limit()} bytes")
        else:
            payload = self.rfile.read(int(length))
            endpoint = _endpoints.get(found.group("name"))
            if endpoint is None:
                status, body = error(404, f"no model {found.group('name')!r} is served at this URL")
            else:
                status, body = endpoint.rest(payload, self.headers.get(CUSTOM_ATTRIBUTES), found.group("method"))
        self.send_response(status, http.HTTPStatus(status).phrase)
        self.send_header("Content-Type", media.JSON)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        status, body = error(404, "only POST /v1/models/<name>[/versions/<n>]:predict is served here")
        self.send_response(status)
        self.send_header("Content-Type", media.JSON)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
        log.debug("loopback TF Serving REST: " + format, *args)


def _listener() -> ThreadingHTTPServer:
    """The worker's one listener, started on first use."""
    with _lock:
        if not _server:
            server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, name="tfs-rest", daemon=True).start()
            log.info("loopback TF Serving REST predict listening on 127.0.0.1:%d", server.server_address[1])
            _server.append(server)
        return _server[0]


def register(name: str, endpoint: Endpoint) -> str:
    """Serve ``endpoint`` (held weakly) at ``/v1/models/<name>``; the URL's base, ``http://127.0.0.1:<port>``."""
    server = _listener()
    _endpoints[name] = endpoint
    return f"http://127.0.0.1:{server.server_address[1]}"
