"""The floor: a bare endpoint on the same HTTP stack (Starlette on uvicorn, uvloop, httptools).

It reads the body and answers a fixed JSON prediction: everything the server does beyond this
is the cost of routing to a worker and running the model.
"""

import sys

import uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route


async def invoke(request):
    await request.body()
    return Response(b"[1]", media_type="application/json")


app = Starlette(routes=[Route("/models/{name}/invoke", invoke, methods=["POST"]), Route("/ping", lambda r: Response(b""))])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http="httptools", access_log=False, log_level="warning")
