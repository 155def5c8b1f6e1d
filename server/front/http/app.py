"""The HTTP front: routes that map the SageMaker hosting contract onto the model service.

Thin by design: read the request, call ``ModelService``, write the answer. No model code runs
here, and every failure leaves as ``{"code": N, "type": "...", "message": "..."}`` (CONTRACT.md §5).
"""

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from handlers.errors import BadInput, ResourceNotFound, ServingError
from server.config import Settings
from server.front import metrics
from server.front.http.fastpath import ASGIApp, InvokeFastPath, read_body
from server.front.service import ModelService

log = logging.getLogger("front")
Endpoint = Callable[[Request], Awaitable[Response]]


def json_response(value: object, status: int = 200) -> Response:
    return Response(orjson.dumps(value), status, media_type="application/json")


def error_response(err: ServingError) -> Response:
    response = json_response(err.body(), err.status)
    if err.retry_after is not None:
        response.headers["Retry-After"] = str(err.retry_after)
    return response


def build_app(settings: Settings, service: ModelService | None = None) -> ASGIApp:
    """The front: the invoke path in plain ASGI (``server.front.http.fastpath``) before Starlette's router."""
    service = service or ModelService(settings)

    async def ping(request: Request) -> Response:
        healthy, why = service.health()
        return Response(b"", 200) if healthy else error_response(ServingError(why, 503))

    async def execution_parameters(request: Request) -> Response:
        return json_response(
            {
                "MaxConcurrentTransforms": settings.max_concurrent_transforms,
                "BatchStrategy": settings.batch_strategy,
                "MaxPayloadInMB": max(1, round(settings.max_payload_bytes / 2**20)),
            }
        )

    async def invocations(request: Request) -> Response:
        # Single-model invocations never get here: the fast path answers them.
        raise ResourceNotFound("this is a multi-model server: invoke POST /models/{name}/invoke")

    async def invoke_named(request: Request) -> Response:
        # Multi-model invocations never get here (the fast path answers them): only the guard's 404.
        raise ResourceNotFound("model management needs SAGEMAKER_MULTI_MODEL=true")

    async def load_model(request: Request) -> Response:
        body = await read_body(request.receive, request.headers.get("content-length", "").encode() or None, 2**20)
        try:
            spec = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise BadInput("body must be JSON: {\"model_name\": ..., \"url\": ...}") from None
        if not isinstance(spec, dict) or "model_name" not in spec or "url" not in spec:
            raise BadInput("body must be a JSON object with model_name and url")
        entry = await service.load(spec["model_name"], spec["url"])
        return json_response({"status": f"Model {entry.name!r} loaded", "modelName": entry.name})

    async def list_models(request: Request) -> Response:
        query = request.query_params
        token = query.get("next_page_token") or query.get("nextPageToken")
        return json_response(service.listing(token, query.get("limit")))

    async def describe_model(request: Request) -> Response:
        return json_response(service.describe(request.path_params["name"]))

    async def unload_model(request: Request) -> Response:
        name = request.path_params["name"]
        await service.unload(name)
        return json_response({"status": f"Model {name!r} unloaded"})

    async def prometheus(request: Request) -> Response:
        metrics.memory_rss.set(service.memory_rss())
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    def multi_model_only(endpoint: Endpoint) -> Endpoint:
        async def guarded(request: Request) -> Response:
            if not settings.multi_model:
                raise ResourceNotFound("model management needs SAGEMAKER_MULTI_MODEL=true")
            return await endpoint(request)

        return guarded

    async def serving_error(request: Request, err: Exception) -> Response:
        assert isinstance(err, ServingError)
        return error_response(err)

    async def http_error(request: Request, err: Exception) -> Response:
        assert isinstance(err, HTTPException)
        if err.status_code == 404:
            return error_response(ResourceNotFound("no such route"))
        if err.status_code == 405:
            return error_response(ServingError(f"method {request.method} is not allowed here", 405))
        return error_response(ServingError(str(err.detail), err.status_code))

    async def unexpected_error(request: Request, err: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(ServingError(f"internal error: {type(err).__name__}", 500))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await service.start()
        yield
        await service.stop()

    routes = [
        Route("/ping", ping, methods=["GET"]),
        Route("/invocations", invocations, methods=["POST"]),
        Route("/execution-parameters", execution_parameters, methods=["GET"]),
        Route("/metrics", prometheus, methods=["GET"]),
        Route("/models", multi_model_only(list_models), methods=["GET"]),
        Route("/models", multi_model_only(load_model), methods=["POST"]),
        Route("/models/{name}", multi_model_only(describe_model), methods=["GET"]),
        Route("/models/{name}", multi_model_only(unload_model), methods=["DELETE"]),
        Route("/models/{name}/invoke", multi_model_only(invoke_named), methods=["POST"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={ServingError: serving_error, HTTPException: http_error, Exception: unexpected_error},
    )
    app.router.redirect_slashes = False  # /ping/ is a 404 JSON, not a redirect echoing the client's Host
    return InvokeFastPath(app, settings, service)
