"""The HTTP front in-process: routes, bodies and error shapes over ``build_app`` with a stand-in
service that records what the front asked of it. The service itself is tested over HTTP
against the real server (tests/test_contract_*.py); here only the front is under test."""

import pytest
from starlette.testclient import TestClient

from handlers.errors import Conflict, InsufficientMemory, NotFound
from server.config import Settings
from server.front.http.app import build_app


class RecordingService:
    """What the front calls on ``ModelService``; answers fixed values and records the calls."""

    def __init__(self):
        self.calls = []
        self.loaded = {"alpha"}

    async def start(self):
        pass

    async def stop(self):
        pass

    def health(self):
        return True, ""

    def memory_rss(self):
        return 123

    def listing(self, token, limit):
        self.calls.append(("list", token, limit))
        return {"models": [{"modelName": "alpha", "modelUrl": "/m/alpha"}]}

    def describe(self, name):
        if name not in self.loaded:
            raise NotFound("model is not loaded")
        return {"modelName": name, "modelUrl": f"/m/{name}"}

    async def load(self, name, url):
        self.calls.append(("load", name, url))
        if name in self.loaded:
            raise Conflict("a model with this name is already loaded")
        if name == "huge":
            raise InsufficientMemory("not enough memory to load the model")

        class Entry:
            pass

        entry = Entry()
        entry.name = name
        return entry

    async def unload(self, name):
        self.calls.append(("unload", name))
        if name not in self.loaded:
            raise NotFound("model is not loaded")

    async def invoke(self, name, body, headers):
        self.calls.append(("invoke", name, body, headers))
        if name not in self.loaded and name != "model":
            raise NotFound("model is not loaded")
        return {"content_type": "application/json", "headers": {"x-amzn-sagemaker-custom-attributes": "a=1"}}, b"[1]"


def client(**env):
    service = RecordingService()
    settings = Settings.from_env({"SAGEMAKER_MAX_PAYLOAD_IN_MB": "0.01", **env})
    return TestClient(build_app(settings, service)), service


@pytest.fixture
def multi():
    test_client, service = client(SAGEMAKER_MULTI_MODEL="true")
    with test_client:
        yield test_client, service


def test_error_bodies_have_the_shape_aws_clients_parse(multi):
    http, _ = multi
    cases = [
        (http.get("/models/nope"), 404, "ModelNotFoundException"),
        (http.post("/models", json={"model_name": "alpha", "url": "x"}), 409, "ConflictStatusException"),
        (http.post("/models", json={"model_name": "huge", "url": "x"}), 507, "InsufficientMemoryException"),
        (http.post("/models", content=b"not json"), 400, "BadRequestException"),
        (http.get("/nowhere"), 404, "ResourceNotFoundException"),
        (http.put("/ping"), 405, "MethodNotAllowedException"),
        (http.post("/models/alpha/invoke", content=b"x" * 20000), 413, "RequestEntityTooLargeException"),
    ]
    for response, status, kind in cases:
        body = response.json()
        assert response.status_code == status and body["code"] == status and body["type"] == kind, body
        assert set(body) == {"code", "type", "message"} and body["message"]


def test_invoke_forwards_only_the_contract_headers(multi):
    http, service = multi
    response = http.post(
        "/models/alpha/invoke", content=b"1,2", headers={
            "Content-Type": "text/csv", "Accept": "application/json", "Cookie": "secret",
            "X-Amzn-SageMaker-Custom-Attributes": "k=v",
        },
    )
    assert response.status_code == 200 and response.content == b"[1]"
    assert response.headers["x-amzn-sagemaker-custom-attributes"] == "a=1"
    _, name, body, headers = service.calls[-1]
    assert (name, body) == ("alpha", b"1,2")
    assert set(headers) == {"content-type", "accept", "x-amzn-sagemaker-custom-attributes"}


def test_a_chunked_body_over_the_limit_is_refused():
    test_client, service = client()
    with test_client as http:
        response = http.post("/invocations", content=iter([b"x" * 8000, b"x" * 8000]))
    assert response.status_code == 413
    assert not [call for call in service.calls if call[0] == "invoke"]


@pytest.mark.parametrize("body, words", [
    (b"[1, 2]", "model_name and url"),
    (b'{"model_name": "a"}', "model_name and url"),
    (b"\xff", "must be JSON"),
])
def test_load_model_bodies(multi, body, words):
    http, service = multi
    response = http.post("/models", content=body)
    assert response.status_code == 400 and words in response.json()["message"]
    assert not [call for call in service.calls if call[0] == "load"]


def test_model_management_is_404_in_single_model_mode():
    test_client, service = client()
    with test_client as http:
        for response in (http.get("/models"), http.post("/models", json={}), http.delete("/models/a")):
            assert response.status_code == 404 and "SAGEMAKER_MULTI_MODEL" in response.json()["message"]
        assert http.post("/invocations", content=b"1").status_code == 200
    assert [call[:3] for call in service.calls] == [("invoke", "model", b"1")]


def test_invocations_is_404_in_multi_model_mode(multi):
    http, _ = multi
    response = http.post("/invocations", content=b"1")
    assert response.status_code == 404 and "/models/{name}/invoke" in response.json()["message"]


def test_execution_parameters_and_list_paging_arguments(multi):
    http, service = multi
    assert http.get("/execution-parameters").json()["BatchStrategy"] == "MULTI_RECORD"
    http.get("/models?limit=5&next_page_token=abc")
    assert service.calls[-1] == ("list", "abc", "5")
    assert "server_memory_rss_bytes 123.0" in http.get("/metrics").text
