"""S3, SNS and SQS behind the endpoint's port: moto's own server on a private loopback port.

A request no SageMaker API claims is passed to moto as it came (method, raw path and query,
headers including Host, body), and moto's answer is passed back as it went, so a client signs
and parses exactly as against AWS.
"""

import logging

import httpx
from starlette.requests import Request
from starlette.responses import Response

from local.instances import free_ports

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length"}


class MotoBackend:
    """moto in server mode, in a thread of this process, listening on loopback only."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self.port = free_ports(1)[0]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()


async def forward(request: Request, backend_url: str, client: httpx.AsyncClient) -> Response:
    path = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string", b"")
    url = backend_url + path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
    headers = [(k, v) for k, v in request.headers.raw if k.decode("latin-1").lower() not in _HOP_BY_HOP]
    upstream = await client.send(
        client.build_request(request.method, url, headers=headers, content=await request.body()), stream=True
    )
    try:
        body = b"".join([chunk async for chunk in upstream.aiter_raw()])
    finally:
        await upstream.aclose()
    response = Response(body, upstream.status_code)
    kept = [(k, v) for k, v in upstream.headers.raw if k.decode("latin-1").lower() not in _HOP_BY_HOP]
    length = upstream.headers.get("content-length") if request.method == "HEAD" else str(len(body))
    response.raw_headers = kept + ([(b"content-length", length.encode())] if length is not None else [])
    return response
