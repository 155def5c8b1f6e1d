"""Asynchronous inference: a queue per endpoint, inputs from S3, outputs and failures to S3, SNS.

InvokeEndpointAsync answers 202 at once with where the output will be; each instance takes
requests from the endpoint's queue, at most ``MaxConcurrentInvocationsPerInstance`` at a time,
reads the input from S3, invokes (timeout up to 3600 s), writes the answer to
``S3OutputPath/<InferenceId>.out`` or the failure to ``S3FailurePath/<InferenceId>-error.out``,
and publishes the platform's notification to the success or error topic. The queue depth is the
``ApproximateBacklogSize`` metric.

A request without a ContentType is sent with its input object's Content-Type: the SageMaker
Python SDK's ``AsyncPredictor`` uploads the serialized input with its serializer's type and
calls InvokeEndpointAsync with only ``InputLocation`` and ``Accept``. A failure is written as the
runtime's JSON error body (``message``, ``code`` and, for a ModelError, its members), so that the
SDK, which reads the failure object with the predictor's deserializer, can raise its
``AsyncInferenceModelError``.
"""

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from local import metrics
from local.artifacts import ArtifactError, split_s3
from local.instances import Instance
from local.invocation import Answer, Invocation
from local.platform import Platform
from local.service_errors import ServiceError

log = logging.getLogger("local.async")
DEFAULT_CONCURRENCY = 4
DEFAULT_TIMEOUT = 900
MAX_TIMEOUT = 3600
DEFAULT_TTL = 6 * 3600


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _join(prefix: str, name: str) -> str:
    return prefix.rstrip("/") + "/" + name


@dataclass
class AsyncRequest:
    inference_id: str
    input_location: str
    output_location: str
    failure_location: str
    content_type: str | None
    accept: str | None
    custom_attributes: str | None
    timeout: float
    ttl: float
    received: float = field(default_factory=time.time)


Invoke = Callable[[Invocation, Instance], Awaitable[Answer]]


class AsyncQueue:
    """One async endpoint's queue and its workers (``invoke`` routes a request, preferring the
    worker's own instance)."""

    def __init__(self, endpoint: str, config: dict[str, Any], platform: Platform, invoke: Invoke):
        self.endpoint = endpoint
        self.invoke = invoke
        self.platform = platform
        self.concurrency = int(config.get("ClientConfig", {}).get("MaxConcurrentInvocationsPerInstance",
                                                                    DEFAULT_CONCURRENCY))
        output = config["OutputConfig"]
        self.output_path = output["S3OutputPath"]
        self.failure_path = output.get("S3FailurePath")
        notification = output.get("NotificationConfig", {})
        self.success_topic = notification.get("SuccessTopic")
        self.error_topic = notification.get("ErrorTopic")
        self.queue: asyncio.Queue[AsyncRequest] = asyncio.Queue()
        self.workers: dict[str, list[asyncio.Task[None]]] = {}
        self.backlog = 0
        self.closing = False  # the endpoint is being deleted: requests in flight are dropped
        self.gauge = metrics.backlog.labels(endpoint)
        self.gauge.set(0)

    def submit(self, input_location: str | None, content_type: str | None, accept: str | None,
               custom_attributes: str | None, inference_id: str | None, timeout: str | None,
               ttl: str | None) -> AsyncRequest:
        if not input_location:
            raise ServiceError("ValidationError", "InputLocation is required for an asynchronous invocation.")
        try:
            split_s3(input_location)
        except ArtifactError as err:
            raise ServiceError("ValidationError", f"InputLocation: {err}.") from None
        timeout_s = _bounded(timeout, DEFAULT_TIMEOUT, 1, MAX_TIMEOUT, "InvocationTimeoutSeconds")
        ttl_s = _bounded(ttl, DEFAULT_TTL, 60, 6 * 3600, "RequestTTLSeconds")
        inference_id = inference_id or str(uuid.uuid4())
        request = AsyncRequest(
            inference_id=inference_id,
            input_location=input_location,
            output_location=_join(self.output_path, f"{inference_id}.out"),
            failure_location=_join(self.failure_path or self.output_path, f"{inference_id}-error.out"),
            content_type=content_type, accept=accept, custom_attributes=custom_attributes,
            timeout=timeout_s, ttl=ttl_s,
        )
        self.queue.put_nowait(request)
        self._count(+1)
        return request

    def _count(self, delta: int) -> None:
        self.backlog += delta
        self.gauge.set(self.backlog)

    def add_instance(self, instance: Instance) -> None:
        self.workers[instance.name] = [
            asyncio.create_task(self._work(instance)) for _ in range(self.concurrency)
        ]

    def remove_instance(self, instance: Instance) -> None:
        for task in self.workers.pop(instance.name, []):
            task.cancel()

    async def close(self) -> None:
        self.closing = True
        tasks = [task for tasks in self.workers.values() for task in tasks]
        self.workers.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        metrics.backlog.remove(self.endpoint)

    async def _work(self, instance: Instance) -> None:
        while True:
            request = await self.queue.get()
            try:
                await self._process(request, instance)
            except asyncio.CancelledError:  # the instance is going (scale-in): another one takes the request
                if not self.closing:
                    self.queue.put_nowait(request)
                    self._count(+1)
                raise
            except Exception:  # a bug here must not stop the worker; the log has it
                log.exception("async request %s failed unexpectedly", request.inference_id)
            finally:
                self._count(-1)

    async def _process(self, request: AsyncRequest, instance: Instance) -> None:
        if time.time() - request.received > request.ttl:
            await self._fail(request, f"Request expired: it waited over {request.ttl:g} s in the queue.", "ValidationError")
            return
        storage = self.platform.storage
        try:
            body, stored_type = await asyncio.to_thread(storage.read, request.input_location)
        except ArtifactError as err:
            await self._fail(request, str(err), "ValidationError")
            return
        invocation = Invocation(
            body, content_type=request.content_type or stored_type, accept=request.accept,
            custom_attributes=request.custom_attributes, inference_id=request.inference_id,
            timeout=request.timeout,
        )
        try:
            answer = await self.invoke(invocation, instance)
        except ServiceError as err:
            await self._fail(request, f"{err.code}: {err.message}", err.code, err.members)
            return
        try:
            await asyncio.to_thread(storage.write, request.output_location, answer.body, answer.content_type)
        except Exception as err:  # the bucket may be gone: that is a failure of this request
            await self._fail(request, f"Could not write the output to {request.output_location}: {err}", "InternalFailure")
            return
        await self._notify(self.success_topic, request, "Completed", {
            "contentType": answer.content_type, "outputLocation": request.output_location,
        })

    async def _fail(self, request: AsyncRequest, reason: str, code: str, members: dict[str, object] | None = None) -> None:
        storage = self.platform.storage
        body = json.dumps({"message": reason, "code": code, **(members or {})}).encode()
        try:
            await asyncio.to_thread(storage.write, request.failure_location, body, "application/json")
        except Exception as err:  # the output bucket may be gone; the notification still says why
            log.warning("could not write the failure of %s: %s", request.inference_id, err)
        await self._notify(self.error_topic, request, "Failed", {"failureLocation": request.failure_location},
                           failure=reason)

    async def _notify(self, topic: str | None, request: AsyncRequest, status: str, response: dict[str, Any],
                      failure: str | None = None) -> None:
        if not topic:
            return
        message: dict[str, Any] = {
            "awsRegion": self.platform.region,
            "eventTime": _iso(time.time()),
            "receivedTime": _iso(request.received),
            "invocationStatus": status,
            "requestParameters": {
                "contentType": request.content_type, "endpointName": self.endpoint,
                "inputLocation": request.input_location,
            },
            "responseParameters": response,
            "inferenceId": request.inference_id,
            "eventVersion": "1.0",
            "eventSource": "aws:sagemaker",
            "eventName": "InferenceResult",
        }
        if failure is not None:
            message["failureReason"] = failure
        try:
            await asyncio.to_thread(self.platform.storage.sns.publish, TopicArn=topic, Message=json.dumps(message))
        except Exception as err:
            log.warning("could not publish the notification of %s to %s: %s", request.inference_id, topic, err)


def _bounded(text: str | None, default: float, low: float, high: float, name: str) -> float:
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ServiceError("ValidationError", f"{name} must be an integer; got {text[:40]!r}.") from None
    if not low <= value <= high:
        raise ServiceError("ValidationError", f"{name} must be between {low:g} and {high:g}; got {value}.")
    return value
