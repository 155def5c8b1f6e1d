"""Users' code/inference.py (CONTRACT.md §6): hooks with and without context, transform_fn,
toolkit errors, isolation between models, and requirements.txt installed at load."""

import base64
import hashlib
import json
import zipfile

import numpy as np
import pytest

from handlers.codecs import media
from tests.builders import classifier, sklearn_model

CSV = {"Content-Type": media.CSV}
ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"

WITHOUT_CONTEXT = """
import json, os, joblib
import numpy as np

def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))

def input_fn(body, content_type):
    assert isinstance(body, str), type(body)          # JSON arrives as text
    return np.array(json.loads(body)["rows"])

def predict_fn(data, model):
    return model.predict_proba(data)

def output_fn(prediction, accept):
    return json.dumps({"probabilities": prediction.tolist(), "accept": accept}), "application/vnd.custom+json"
"""

WITH_CONTEXT = """
import json, os, joblib
import numpy as np

def model_fn(model_dir, context):
    assert context.system_properties["model_dir"] == model_dir
    return joblib.load(os.path.join(model_dir, "model.joblib"))

def input_fn(body, content_type, context):
    return np.array(json.loads(body)["rows"])

def predict_fn(data, model, context):
    return model.predict(data)

def output_fn(prediction, accept, context):
    seen = context.get_request_header(0, "X-Amzn-SageMaker-Custom-Attributes")
    context.set_response_header(0, "X-Amzn-SageMaker-Custom-Attributes", "echo=" + (seen or ""))
    return json.dumps({"labels": prediction.tolist(), "dir": os.path.basename(context.system_properties["model_dir"])})
"""

TRANSFORM = """
import json
import numpy as np

def transform_fn(model, body, content_type, accept, context):
    rows = np.array([[float(v) for v in line.split(",")] for line in body.splitlines()])
    return json.dumps({"sum": model.predict(rows).tolist(), "type": content_type}), "application/json"
"""

BOTH = """
def transform_fn(model, body, content_type, accept):
    return b""

def predict_fn(data, model):
    return data
"""

TOOLKIT_ERRORS = """
from sagemaker_inference import content_types, decoder, encoder, errors

def input_fn(body, content_type):
    if content_type == "application/x-forbidden":
        raise errors.GenericInferenceToolkitError(403, "forbidden input")
    return decoder.decode(body, content_type)

def output_fn(prediction, accept):
    return encoder.encode(prediction, content_types.JSON), content_types.JSON
"""

ONLY_PREDICT = """
def predict_fn(data, model):
    return model.predict(data) + {offset}
"""

# output_fn answering a content type of the wrong type: the worker must refuse it with that request's
# own 500, not meet it while serialising the reply.
BYTES_CONTENT_TYPE = """
def output_fn(prediction, accept):
    return b"ok", b"text/plain"
"""

IMPORTS_SIBLING = """
from helper import VALUE

def predict_fn(data, model):
    return [VALUE] * len(data)
"""


def tiny_wheel(directory, value: int) -> str:
    """A real wheel, built by hand, of a package ``tinypkg`` with ``VALUE = value``."""
    name = "tinypkg-1.0-py3-none-any.whl"
    files = {
        "tinypkg/__init__.py": f"VALUE = {value}\n".encode(),
        "tinypkg-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: tinypkg\nVersion: 1.0\n",
        "tinypkg-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, content in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(content)}")
    record.append("tinypkg-1.0.dist-info/RECORD,,")
    path = directory / name
    with zipfile.ZipFile(path, "w") as archive:
        for member, content in files.items():
            archive.writestr(member, content)
        archive.writestr("tinypkg-1.0.dist-info/RECORD", "\n".join(record) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("usercode")
    sklearn_model(root / "without" / "model", code=WITHOUT_CONTEXT)
    sklearn_model(root / "with" / "model", code=WITH_CONTEXT)
    sklearn_model(root / "transform" / "model", code=TRANSFORM)
    sklearn_model(root / "both" / "model", code=BOTH)
    sklearn_model(root / "toolkit" / "model", code=TOOLKIT_ERRORS)
    sklearn_model(root / "plus10" / "model", code=ONLY_PREDICT.format(offset=10))
    sklearn_model(root / "plus20" / "model", code=ONLY_PREDICT.format(offset=20))
    sklearn_model(root / "bytestype" / "model", code=BYTES_CONTENT_TYPE)
    for name, value in (("sib1", 1), ("sib2", 2)):
        directory = sklearn_model(root / name / "model", code=IMPORTS_SIBLING)
        (directory / "code" / "helper.py").write_text(f"VALUE = {value}\n")
    wheels = tmp_path_factory.mktemp("wheels")
    uses_package = "import tinypkg\n\ndef predict_fn(data, model):\n    return [tinypkg.VALUE] * len(data)\n"
    sklearn_model(root / "withreq" / "model", code=uses_package, requirements=tiny_wheel(wheels, 42) + "\n")
    sklearn_model(root / "badreq" / "model", code=uses_package, requirements="this is not a requirement !!\n")
    return root


@pytest.fixture(scope="module")
def server(start_module_server, root, tmp_path_factory):
    return start_module_server(
        SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=root,
        MODEL_SERVER_PACKAGES_DIR=tmp_path_factory.mktemp("packages"),
    )


def rows():
    return classifier()[1][:5]


def test_hooks_without_context(server, root):
    server.load("without", root / "without" / "model")
    model, X = classifier()
    response = server.client.post(
        "/models/without/invoke", content=json.dumps({"rows": rows().tolist()}),
        headers={"Content-Type": "application/json", "Accept": "application/vnd.custom+json"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/vnd.custom+json"
    np.testing.assert_allclose(response.json()["probabilities"], model.predict_proba(rows()))
    assert response.json()["accept"] == "application/vnd.custom+json"


def test_hooks_with_context_see_headers_and_set_custom_attributes(server, root):
    server.load("with", root / "with" / "model")
    model, _ = classifier()
    response = server.client.post(
        "/models/with/invoke", content=json.dumps({"rows": rows().tolist()}),
        headers={"Content-Type": "application/json", ATTRIBUTES: "trace=abc-123"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"labels": model.predict(rows()).tolist(), "dir": "model"}
    assert response.headers[ATTRIBUTES] == "echo=trace=abc-123"
    assert response.headers["content-type"].startswith("application/json")  # bare output: the default type


def test_transform_fn_replaces_the_three(server, root):
    server.load("transform", root / "transform" / "model")
    model, _ = classifier()
    body = "\n".join(",".join(str(v) for v in row) for row in rows())
    response = server.client.post("/models/transform/invoke", content=body, headers={"Content-Type": "text/csv; charset=utf-8"})
    assert response.status_code == 200, response.text
    assert response.json() == {"sum": model.predict(rows()).tolist(), "type": "text/csv; charset=utf-8"}


def test_transform_fn_with_another_hook_fails_the_load(server, root):
    response = server.load("both", root / "both" / "model", expect=400)
    assert "transform_fn together with" in response.json()["message"]
    assert server.client.get("/models/both").status_code == 404


def test_toolkit_codecs_and_error_status_codes(server, root):
    server.load("toolkit", root / "toolkit" / "model")
    model, _ = classifier()
    ok = server.client.post("/models/toolkit/invoke", content=json.dumps(rows().tolist()), headers={"Content-Type": "application/json"})
    assert ok.status_code == 200 and ok.json() == model.predict(rows()).tolist()
    forbidden = server.client.post("/models/toolkit/invoke", content=b"x", headers={"Content-Type": "application/x-forbidden"})
    assert forbidden.status_code == 403 and "forbidden input" in forbidden.json()["message"]
    unsupported = server.client.post("/models/toolkit/invoke", content=b"x", headers={"Content-Type": "application/x-unknown"})
    assert unsupported.status_code == 415 and "application/x-unknown" in unsupported.json()["message"]


def test_a_content_type_that_is_not_a_string_fails_its_request_and_not_its_worker(server, root):
    server.load("bytestype", root / "bytestype" / "model")
    server.load("healthy", root / "plus10" / "model")
    body = "\n".join(",".join(str(v) for v in row) for row in rows())
    response = server.client.post("/models/bytestype/invoke", content=body, headers=CSV)
    assert response.status_code == 500
    assert response.json() == {"code": 500, "type": "InternalServerException",
                               "message": "output_fn returned a content type of type bytes; expected str"}
    model, _ = classifier()
    healthy = server.client.post("/models/healthy/invoke", content=body, headers=CSV)
    assert healthy.status_code == 200 and healthy.json() == (model.predict(rows()) + 10).tolist()
    pids = {server.client.get(f"/models/{name}").json()["workerPid"] for name in ("bytestype", "healthy")}
    assert len(pids) == 1  # the same sklearn worker answered both
    assert server.client.post("/models/bytestype/invoke", content=body, headers=CSV).status_code == 500


def test_models_with_different_code_stay_apart(server, root):
    """Same module names (inference, helper), different contents: each model gets its own."""
    model, _ = classifier()
    for name in ("plus10", "plus20", "sib1", "sib2"):
        server.load(name, root / name / "model")
    base = model.predict(rows())
    body = "\n".join(",".join(str(v) for v in row) for row in rows())
    answers = {
        name: server.client.post(f"/models/{name}/invoke", content=body, headers=CSV).json()
        for name in ("plus10", "plus20", "sib1", "sib2")
    }
    assert answers["plus10"] == (base + 10).tolist() and answers["plus20"] == (base + 20).tolist()
    assert answers["sib1"] == [1] * 5 and answers["sib2"] == [2] * 5
    pids = {server.client.get(f"/models/{n}").json()["workerPid"] for n in answers}
    assert len(pids) == 1  # one sklearn worker holds them all


def test_requirements_are_installed_at_load(server, root):
    server.load("withreq", root / "withreq" / "model")
    response = server.client.post("/models/withreq/invoke", content=b"1,2,3,4", headers=CSV)
    assert response.status_code == 200 and response.json() == [42]


def test_a_requirement_that_cannot_be_installed_fails_its_load_cleanly(server, root):
    response = server.load("badreq", root / "badreq" / "model", expect=500)
    error = response.json()["message"]
    assert "requirements.txt failed" in error and "Invalid requirement" in error
    assert server.client.get("/models/badreq").status_code == 404
    assert server.client.get("/ping").status_code == 200
    server.load("plain-after", root / "plus10" / "model")
    assert server.client.post("/models/plain-after/invoke", content=b"1,2,3,4", headers=CSV).status_code == 200
