"""What a request is (which AWS service signed it) and how each service's errors look on the wire.

Both SageMaker APIs sign as service ``sagemaker``; S3, SNS and SQS sign as themselves. The control
plane speaks JSON 1.1 (``X-Amz-Target: SageMaker.<Operation>``, errors ``{"__type", "message"}``),
the runtime REST JSON (errors named by ``X-Amzn-ErrorType``, members in the body). botocore reads
both into the same ``ClientError`` it raises against AWS.
"""

import json
import re

from starlette.requests import Request
from starlette.responses import Response

ACCOUNT = "123456789012"  # moto's default account, so that ARNs of both halves agree
DEFAULT_REGION = "us-east-1"
_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/([^/,\s]+)/([^/,\s]+)/aws4_request")


def credential_scope(request: Request) -> tuple[str | None, str | None]:
    """(region, service) of the SigV4 credential scope in ``Authorization``, or (None, None)."""
    match = _SCOPE.search(request.headers.get("authorization", ""))
    return (match.group(1), match.group(2)) if match else (None, None)


def arn(region: str, kind: str, name: str) -> str:
    return f"arn:aws:sagemaker:{region}:{ACCOUNT}:{kind}/{name.lower()}"


class ServiceError(Exception):
    """An error answered in the service's own shape: botocore raises ``ClientError`` with ``code``."""

    def __init__(self, code: str, message: str, status: int = 400, **members):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.members = members


def validation(message: str) -> ServiceError:
    """The control plane's ValidationException (what AWS answers for most bad requests)."""
    return ServiceError("ValidationException", message)


def json11_error(err: ServiceError) -> Response:
    body = {"__type": err.code, "message": err.message, **err.members}
    return Response(json.dumps(body), err.status, media_type="application/x-amz-json-1.1")


def rest_json_error(err: ServiceError) -> Response:
    body = {"message": err.message, **err.members}
    return Response(
        json.dumps(body), err.status, media_type="application/json", headers={"x-amzn-ErrorType": err.code}
    )
