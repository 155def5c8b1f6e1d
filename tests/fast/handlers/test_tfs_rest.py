"""The worker's loopback TF Serving REST predict URL (handlers.tfs_rest) and the TF Serving
container's custom-attribute parsing (handlers.tfs_hooks), in process."""

import gc

import orjson
import pytest
import requests

from handlers import tfs_rest
from handlers.tfs_hooks import response, tfs_attributes


class Echo:
    """An endpoint answering what it was asked, as TF Serving's JSON."""

    def rest(self, body, custom_attributes, method):
        return 200, orjson.dumps({"body": body.decode(), "attributes": custom_attributes, "method": method})


def test_a_registered_endpoint_answers_its_url_and_is_held_weakly():
    endpoint = Echo()
    base = tfs_rest.register("echo-model", endpoint)
    assert base.startswith("http://127.0.0.1:")
    answer = requests.post(f"{base}/v1/models/echo-model/versions/3:predict", data='{"instances": [1]}',
                           headers={"X-Amzn-SageMaker-Custom-Attributes": "tfs-signature=s"}, timeout=10)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    assert answer.json() == {"body": '{"instances": [1]}', "attributes": "tfs-signature=s", "method": "predict"}
    del endpoint
    gc.collect()
    answer = requests.post(f"{base}/v1/models/echo-model:predict", data="{}", timeout=10)
    assert answer.status_code == 404 and answer.json() == {"error": "no model 'echo-model' is served at this URL"}


@pytest.mark.parametrize("path, status", [("/v1/models/x", 404), ("/predict", 404), ("/v1/models/a/b:predict", 404)])
def test_other_paths_are_tf_serving_errors(path, status):
    base = tfs_rest.register("kept", keep := Echo())
    answer = requests.post(base + path, data="{}", timeout=10)
    assert answer.status_code == status and "error" in answer.json()
    assert requests.get(f"{base}/v1/models/kept", timeout=10).status_code == 404
    del keep


def test_custom_attributes_are_read_as_the_container_reads_them():
    assert tfs_attributes("tfs-model-name=m, tfs-method=classify,other=1,tfs-model-version=2") == {
        "tfs-model-name": "m", "tfs-method": "classify", "tfs-model-version": "2"}
    assert tfs_attributes(None) == {}


def test_the_response_is_a_requests_response():
    answer = response(400, b'{"error": "bad"}', "http://127.0.0.1:1/v1/models/m:predict")
    assert isinstance(answer, requests.Response)
    assert (answer.status_code, answer.ok, answer.reason, answer.text) == (400, False, "Bad Request", '{"error": "bad"}')
    assert answer.json() == {"error": "bad"} and answer.headers["Content-Type"] == "application/json"
    with pytest.raises(requests.HTTPError):
        answer.raise_for_status()
