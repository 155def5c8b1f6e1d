"""One HTTP call to one container, and how its failures reach the client.

A container's 4xx/5xx becomes the runtime's ``ModelError`` (424) quoting its status and body,
as the platform does; a container that does not answer in time is a ModelError too; one that
is gone (crashed, killed) is ``ServiceUnavailable`` (503).
"""

from typing import Any

import httpx

from local.arns import ACCOUNT, log_stream_arn
from local.instances import Container, Instance
from local.service_errors import ServiceError

QUOTED_LIMIT = 1024  # how much of a container's error body the message quotes


def model_error(region: str, instance: Instance, hostname: str, status: int, text: str) -> ServiceError:
    kind = "client" if 400 <= status < 500 else "server"
    stream = log_stream_arn(region, instance.endpoint, instance.variant, instance.name)
    quoted = text[:QUOTED_LIMIT]
    return ServiceError(
        "ModelError",
        f'Received {kind} error ({status}) from {hostname} with message "{quoted}". '
        f"See {stream} in account {ACCOUNT} for more information.",
        424,
        OriginalStatusCode=status,
        OriginalMessage=quoted,
        LogStreamArn=stream,
    )


async def call(
    client: httpx.AsyncClient, region: str, instance: Instance, container: Container, method: str, path: str,
    timeout: float, **request: Any,
) -> httpx.Response:
    """The container's answer, whatever its status; ServiceError when there is no answer."""
    try:
        return await client.request(method, container.url + path, timeout=timeout, **request)
    except httpx.TimeoutException:
        raise model_error(
            region, instance, container.spec.hostname, 0,
            f"Your invocation timed out while waiting for a response from container {container.spec.hostname}.",
        ) from None
    except httpx.TransportError:
        reason = container.exit_reason() or "it refused the connection"
        raise ServiceError(
            "ServiceUnavailable", f"The container {container.spec.hostname} of {instance.name} is not answering: "
            f"{reason.split('; last log lines')[0]}", 503,
        ) from None


def raise_for_status(region: str, instance: Instance, container: Container, response: httpx.Response) -> None:
    if response.status_code >= 400:
        raise model_error(region, instance, container.spec.hostname, response.status_code, response.text)
