"""The services' errors, and how each looks on the wire.

The control plane speaks JSON 1.1 (errors ``{"__type", "message"}``), the runtime REST JSON
(errors named by ``X-Amzn-ErrorType``, members in the body). botocore reads both into the same
``ClientError`` it raises against AWS.
"""

import json

from starlette.responses import Response


class ServiceError(Exception):
    """An error answered in the service's own shape: botocore raises ``ClientError`` with ``code``."""

    def __init__(self, code: str, message: str, status: int = 400, **members: object):
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
