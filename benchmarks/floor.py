"""The floors: bare endpoints that read the body and answer a fixed JSON prediction.

    python benchmarks/floor.py PORT            # Starlette on uvicorn (uvloop, httptools): the server's own HTTP stack
    python benchmarks/floor.py PORT --raw      # uvloop and httptools alone: no framework at all

Everything the server does beyond the first is the cost of routing to a worker and running the
model; the gap between the two is the cost of the HTTP framework itself. Any path answers, so
many-model traffic can be pointed at either.
"""

import asyncio
import sys

ANSWER = b"[1]"


def starlette_app():
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    async def invoke(request):
        await request.body()
        return Response(ANSWER, media_type="application/json")

    return Starlette(routes=[Route("/models/{name}/invoke", invoke, methods=["POST"]),
                             Route("/ping", lambda r: Response(b""))])


class RawProtocol(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection parsed by httptools; each complete request gets the answer."""

    RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(ANSWER)) + ANSWER

    def connection_made(self, transport):
        import httptools

        self.transport = transport
        self.parser = httptools.HttpRequestParser(self)

    def data_received(self, data):
        try:
            self.parser.feed_data(data)
        except Exception:  # a malformed request closes the connection, as a server would
            self.transport.close()

    def on_message_complete(self):
        self.transport.write(self.RESPONSE)


async def serve_raw(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(RawProtocol, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    port = int(sys.argv[1])
    if "--raw" in sys.argv[2:]:
        import uvloop

        uvloop.run(serve_raw(port))
    else:
        import uvicorn

        uvicorn.run(starlette_app(), host="127.0.0.1", port=port, loop="uvloop", http="httptools",
                    access_log=False, log_level="warning")
