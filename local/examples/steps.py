"""The boto3 steps every scenario takes (deploy, wait, upload), shared by the examples and tests.

Nothing here knows about the local endpoint: the clients come from boto3's own configuration, so
``AWS_ENDPOINT_URL`` points them at the local endpoint and leaving it unset points them at AWS.
"""

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import boto3

ROLE = os.environ.get("SAGEMAKER_ROLE_ARN", "arn:aws:iam::123456789012:role/local")
IMAGE = os.environ.get("SAGEMAKER_IMAGE", "sagemaker-model-server:latest")  # your ECR image on AWS


def clients(*services: str) -> Any:
    """boto3 clients from the environment; against a loopback ``AWS_ENDPOINT_URL``, dummy credentials
    when none are set (the local endpoint checks none)."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    local = urlparse(endpoint).hostname in ("127.0.0.1", "localhost", "::1")
    session = boto3.Session(
        region_name=os.environ.get("AWS_DEFAULT_REGION", os.environ.get("AWS_REGION", "us-east-1")),
        **({"aws_access_key_id": "local", "aws_secret_access_key": "local"}
           if local and "AWS_ACCESS_KEY_ID" not in os.environ else {}),
    )
    made = [session.client(service) for service in services]
    return made[0] if len(made) == 1 else made


def local_metrics() -> str | None:
    """The local endpoint's Prometheus text (None on AWS, where CloudWatch has these figures)."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        return None
    import httpx

    return httpx.get(endpoint.rstrip("/") + "/metrics", timeout=10).text


def metric_sum(text: str, name: str, **labels: str) -> float:
    """The sum of a Prometheus metric's samples whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith((name + "{", name + " ")):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


def wait_status(sm: Any, name: str, timeout: float = 900, until: Sequence[str] = ("InService", "Failed")) -> dict[str, Any]:
    """DescribeEndpoint until the status is one of ``until`` (the waiter's 30 s delay is too slow here)."""
    deadline = time.monotonic() + timeout
    while True:
        described = sm.describe_endpoint(EndpointName=name)
        if described["EndpointStatus"] in until or time.monotonic() > deadline:
            return dict(described)
        time.sleep(0.2)


def deploy(sm: Any, name: str, containers: dict[str, Any] | list[dict[str, Any]],
           variants: list[dict[str, Any]] | None = None, mode: str | None = None,
           async_config: dict[str, Any] | None = None, instance_type: str = "ml.m5.large",
           timeout: float = 900) -> dict[str, Any]:
    """CreateModel + CreateEndpointConfig + CreateEndpoint, then wait; the endpoint's description.

    ``containers`` is one container definition (PrimaryContainer) or a list (Containers, with
    ``mode`` Direct or Serial).
    """
    model: dict[str, Any] = {"ModelName": name, "ExecutionRoleArn": ROLE}
    if isinstance(containers, dict):
        model["PrimaryContainer"] = containers
    else:
        model["Containers"] = containers
        if mode:
            model["InferenceExecutionConfig"] = {"Mode": mode}
    sm.create_model(**model)
    config: dict[str, Any] = {
        "EndpointConfigName": name,
        "ProductionVariants": variants or [
            {"VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": instance_type}
        ],
    }
    if async_config:
        config["AsyncInferenceConfig"] = async_config
    sm.create_endpoint_config(**config)
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    described = wait_status(sm, name, timeout)
    if described["EndpointStatus"] != "InService":
        raise RuntimeError(f"endpoint {name} is {described['EndpointStatus']}: {described.get('FailureReason')}")
    return described


def tear_down(sm: Any, name: str) -> None:
    """DeleteEndpoint, DeleteEndpointConfig, DeleteModel (what each example leaves behind on AWS)."""
    sm.delete_endpoint(EndpointName=name)
    sm.delete_endpoint_config(EndpointConfigName=name)
    sm.delete_model(ModelName=name)


def upload(s3: Any, bucket: str, files: dict[str, Path]) -> None:
    """Create ``bucket`` if needed and upload ``{key: path}``."""
    try:
        s3.head_bucket(Bucket=bucket)
    except s3.exceptions.ClientError:
        s3.create_bucket(Bucket=bucket)
    for key, path in files.items():
        s3.upload_file(str(path), bucket, key)
