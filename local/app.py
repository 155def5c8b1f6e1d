"""The one port: tells the services apart and hands each request to its half.

``X-Amz-Target: SageMaker.*`` is the control plane; a request signed for ``sagemaker`` on
``/endpoints/<name>/invocations`` or ``/async-invocations`` is the runtime; an unsigned
``GET /metrics`` is the platform's metrics; everything else (S3, SNS, SQS, ...) goes to moto.
"""

import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import unquote

import httpx
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from local import iam, metrics
from local.arns import ACCOUNT
from local.control_plane import ControlPlane
from local.endpoint import Endpoint
from local.invocation import Invocation
from local.proxy import forward
from local.service_errors import ServiceError, json11_error, rest_json_error

log = logging.getLogger("local.app")
_RUNTIME = re.compile(r"^/endpoints/([^/]+)/(invocations|async-invocations)$")
_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/([^/,\s]+)/([^/,\s]+)/aws4_request")
MAX_PAYLOAD = 6 * 1024 * 1024  # real-time request limit (6 MiB)
_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]


def credential_scope(request: Request) -> tuple[str | None, str | None]:
    """(region, service) of the SigV4 credential scope in ``Authorization``, or (None, None).

    Both SageMaker APIs sign as service ``sagemaker``; S3, SNS and SQS sign as themselves."""
    match = _SCOPE.search(request.headers.get("authorization", ""))
    return (match.group(1), match.group(2)) if match else (None, None)


def build_app(control: ControlPlane, backend_url: str, on_shutdown: Callable[[], None] | None = None) -> Starlette:
    proxy_client = httpx.AsyncClient(timeout=300)

    async def dispatch(request: Request) -> Response:
        target = request.headers.get("x-amz-target", "")
        _, service = credential_scope(request)
        if target.startswith("SageMaker."):
            return await control_plane(request, target.split(".", 1)[1])
        match = _RUNTIME.match(request.url.path)
        if match and request.method == "POST" and service in ("sagemaker", None):
            return await runtime(request, unquote(match.group(1)), match.group(2))
        if service is None and request.method == "GET" and request.url.path == "/metrics":
            return Response(metrics.render(), media_type="text/plain; version=0.0.4")
        if service is None and request.method == "GET" and request.url.path.startswith("/_local/endpoints/"):
            return instances(request.url.path.rsplit("/", 1)[1])
        if service == "iam" and request.method == "POST":
            return await identity(request)
        return await forward(request, backend_url, proxy_client)

    async def identity(request: Request) -> Response:
        """Execution roles are not checked here (local/iam.py): the SDK's own checks of one pass."""
        params = iam.form(await request.body())
        if params.get("Action") == "SimulatePrincipalPolicy":
            return iam.simulate_principal_policy(params)
        answer = await forward(request, backend_url, proxy_client)
        if params.get("Action") == "GetRole" and answer.status_code == 404 and b"NoSuchEntity" in answer.body:
            return iam.assumed_role(params.get("RoleName", ""))
        return answer

    async def control_plane(request: Request, operation: str) -> Response:
        try:
            try:
                params = json.loads(await request.body() or b"{}")
            except ValueError:
                raise ServiceError("SerializationException", "The request body is not valid JSON.") from None
            result = await control.handle(operation, params)
        except ServiceError as err:
            return json11_error(err)
        except Exception:
            log.exception("control plane operation %s failed", operation)
            return json11_error(ServiceError("InternalFailure", "The local endpoint failed; its log has why.", 500))
        return Response(json.dumps(result), media_type="application/x-amz-json-1.1")

    async def runtime(request: Request, name: str, kind: str) -> Response:
        headers = request.headers
        try:
            if name not in control.endpoints:
                raise ServiceError(
                    "ValidationError", f"Endpoint {name} of account {ACCOUNT} not found."
                )
            endpoint = control.endpoints[name]
            if kind == "async-invocations":
                return await invoke_async(endpoint, headers)
            body = await request.body()
            if len(body) > MAX_PAYLOAD:
                raise ServiceError("ValidationError", f"Request body is {len(body)} bytes, over the 6 MiB limit.")
            if endpoint.queue is not None:
                raise ServiceError("ValidationError", f"Endpoint {name} is an asynchronous endpoint: "
                                   "use InvokeEndpointAsync.")
            answer = await endpoint.invoke(Invocation(
                body,
                content_type=headers.get("content-type"),
                accept=headers.get("accept"),
                custom_attributes=headers.get("x-amzn-sagemaker-custom-attributes"),
                target_model=headers.get("x-amzn-sagemaker-target-model"),
                target_variant=headers.get("x-amzn-sagemaker-target-variant"),
                target_container=headers.get("x-amzn-sagemaker-target-container-hostname"),
                inference_id=headers.get("x-amzn-sagemaker-inference-id"),
            ))
        except ServiceError as err:
            return rest_json_error(err)
        except Exception:
            log.exception("invocation of %s failed", name)
            return rest_json_error(ServiceError("InternalFailure", "The local endpoint failed; its log has why.", 500))
        out = {"x-Amzn-Invoked-Production-Variant": answer.variant}
        if answer.custom_attributes:
            out["X-Amzn-SageMaker-Custom-Attributes"] = answer.custom_attributes
        if answer.content_type:
            # The container's type as it sent it: as media_type, Starlette would add "; charset=utf-8"
            # to text/*, and the SDK's PandasDeserializer refuses "text/csv; charset=utf-8".
            out["Content-Type"] = answer.content_type
        return Response(answer.body, 200, headers=out)

    async def invoke_async(endpoint: Endpoint, headers: Headers) -> Response:
        if endpoint.queue is None:
            raise ServiceError("ValidationError", f"Endpoint {endpoint.name} is not an asynchronous endpoint.")
        endpoint.check_request(Invocation(b""))
        queued = endpoint.queue.submit(
            headers.get("x-amzn-sagemaker-inputlocation"),
            headers.get("x-amzn-sagemaker-content-type"),
            headers.get("x-amzn-sagemaker-accept"),
            headers.get("x-amzn-sagemaker-custom-attributes"),
            headers.get("x-amzn-sagemaker-inference-id"),
            headers.get("x-amzn-sagemaker-invocationtimeoutseconds"),
            headers.get("x-amzn-sagemaker-requestttlseconds"),
        )
        out = {"X-Amzn-SageMaker-OutputLocation": queued.output_location}
        if endpoint.queue.failure_path:
            out["X-Amzn-SageMaker-FailureLocation"] = queued.failure_location
        return JSONResponse({"InferenceId": queued.inference_id}, 202, headers=out)

    def instances(name: str) -> Response:
        """Where an endpoint's instances are (ports, pids, what each holds): for looking, not for AWS."""
        endpoint = control.endpoints.get(name)
        if endpoint is None:
            return JSONResponse({"error": f"no endpoint {name}"}, 404)
        out: list[dict[str, Any]] = []
        for variant in endpoint.variants:
            for instance in variant.instances:
                out.append({
                    "variant": variant.name, "instance": instance.name, "outstanding": instance.outstanding,
                    "served": instance.served,
                    "containers": [
                        {"hostname": c.spec.hostname, "port": c.port,
                         "pid": c.process.pid if c.process else None} for c in instance.containers
                    ],
                    "models": dict(instance.models.counts, loaded=list(instance.models.loaded))
                    if instance.models is not None else None,
                })
        return JSONResponse({"endpoint": name, "status": endpoint.status, "instances": out})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await control.close()
        await proxy_client.aclose()
        if on_shutdown is not None:
            on_shutdown()

    return Starlette(routes=[Route("/{path:path}", dispatch, methods=_METHODS)], lifespan=lifespan)
