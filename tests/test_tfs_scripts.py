"""Scripts written for the AWS TensorFlow Serving container (issue 20), over HTTP on the real server.

The scripts below are our own, in the shape of the container's public examples
(test/resources/examples/test1..test5 of aws/sagemaker-tensorflow-serving-container):
``input_handler`` passing JSON through and making ``{"instances": [...]}`` of a CSV line,
``output_handler`` checking ``response.status_code`` and answering ``response.content`` as
``context.accept_header``; and one ``handler`` that does ``requests.post(context.rest_uri,
data=...)`` itself. The model is a SavedModel with known weights, so every answer is checked
against numbers computed here.
"""

import json
import textwrap

import numpy as np
import pytest

from tests.builders import sklearn_model

WEIGHTS = np.array([[1.0, -1.0], [2.0, 0.5], [-3.0, 4.0]], np.float32)
ROWS = np.array([[0.5, 1.0, -2.0], [3.0, 0.0, 1.5]], np.float32)

PROCESS_INPUT = """
def _process_input(data, context):
    if context.request_content_type == 'application/json':
        d = data.read().decode('utf-8')
        return d if len(d) else ''
    if context.request_content_type == 'text/csv':
        return json.dumps({'instances': [[float(x) for x in data.read().decode('utf-8').split(',')]]})
    raise ValueError('{{"error": "unsupported content type {}"}}'.format(context.request_content_type or "unknown"))


def _process_output(data, context):
    if data.status_code != 200:
        raise ValueError(data.content.decode('utf-8'))
    return data.content, context.accept_header
"""

INPUT_OUTPUT_HANDLERS = """
import json

def input_handler(data, context):
    return _process_input(data, context)

def output_handler(data, context):
    return _process_output(data, context)
""" + PROCESS_INPUT

HANDLER = """
import json
import requests

def handler(data, context):
    processed_input = _process_input(data, context)
    response = requests.post(context.rest_uri, data=processed_input)
    return _process_output(response, context)
""" + PROCESS_INPUT

CONTEXT_ECHO = """
import json
import requests

def input_handler(data, context):
    return data.read()

def output_handler(response, context):
    fields = dict(context._asdict())
    fields["rest_uri_answer"] = requests.post(context.rest_uri, data='{"instances": [[1, 1, 1]]}').json()
    fields["response"] = {
        "status_code": response.status_code, "ok": response.ok, "text": response.text, "json": response.json(),
        "content_type": response.headers["content-type"], "is_bytes": isinstance(response.content, bytes),
    }
    return json.dumps(fields), "application/json"
"""

INPUT_HANDLER_ALONE = """
def input_handler(data, context):
    return data.read()
"""

MIXED = """
def input_fn(body, content_type):
    return body

def handler(data, context):
    return data.read(), "application/json"
"""


def linear_savedmodel(directory):
    """A SavedModel computing ``x @ WEIGHTS`` (input ``x`` [None, 3], output ``y``)."""
    import tensorflow as tf

    class Linear(tf.Module):
        def __init__(self):
            super().__init__()
            self.weights = tf.Variable(WEIGHTS)

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
        def serve(self, x):
            return {"y": tf.matmul(x, self.weights)}

    module = Linear()
    tf.saved_model.save(module, str(directory), signatures={"serving_default": module.serve})


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("tfs-scripts")
    linear_savedmodel(root / "saved")
    for name, script in (("io", INPUT_OUTPUT_HANDLERS), ("handler", HANDLER), ("echo", CONTEXT_ECHO),
                         ("alone", INPUT_HANDLER_ALONE), ("mixed", MIXED)):
        model = root / name
        (model / "1").mkdir(parents=True)
        for item in (root / "saved").rglob("*"):
            target = model / "1" / item.relative_to(root / "saved")
            if item.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.write_bytes(item.read_bytes())
        (model / "code").mkdir()
        (model / "code" / "inference.py").write_text(textwrap.dedent(script))
    sklearn_model(root / "sk", code=HANDLER)
    return root


@pytest.fixture(scope="module")
def server(start_module_server, root):
    server = start_module_server(SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=root)
    for name in ("io", "handler", "echo"):
        server.load(name, root / name)
    return server


def invoke(server, name, body, content_type="application/json", accept="application/json", **headers):
    return server.client.post(f"/models/{name}/invoke", content=body,
                              headers={"Content-Type": content_type, "Accept": accept, **headers})


# The scripts answer TF Serving's JSON as whatever ``context.accept_header`` names: ``text/plain``,
# which the server's own encoders do not write, tells their answer from the default handler's.
@pytest.mark.parametrize("name", ["io", "handler"])
def test_json_passes_through_to_the_tf_serving_predict(server, name):
    answer = invoke(server, name, json.dumps({"instances": ROWS.tolist()}), accept="text/plain")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    np.testing.assert_allclose(json.loads(answer.text)["predictions"], ROWS @ WEIGHTS, rtol=1e-6)


@pytest.mark.parametrize("name", ["io", "handler"])
def test_columnar_inputs_answer_outputs(server, name):
    answer = invoke(server, name, json.dumps({"inputs": {"x": ROWS.tolist()}}), accept="text/plain")
    assert answer.status_code == 200, answer.text
    np.testing.assert_allclose(json.loads(answer.text)["outputs"], ROWS @ WEIGHTS, rtol=1e-6)


@pytest.mark.parametrize("name", ["io", "handler"])
def test_a_csv_line_made_into_instances_by_the_script(server, name):
    answer = invoke(server, name, ",".join(str(v) for v in ROWS[1]), content_type="text/csv", accept="text/plain")
    assert answer.status_code == 200, answer.text
    np.testing.assert_allclose(json.loads(answer.text)["predictions"], ROWS[1:] @ WEIGHTS, rtol=1e-6)


@pytest.mark.parametrize("name", ["io", "handler"])
def test_tf_servings_error_reaches_the_script_which_raises_it(server, name):
    """A bad request answers the script's ``response`` with a 400 and TF Serving's ``{"error"}``
    body; the public examples raise ``ValueError(response.content)``, a 500 as in the container."""
    answer = invoke(server, name, json.dumps({"instances": [[1.0, 2.0]]}))
    assert answer.status_code == 500, answer.text
    message = answer.json()["message"]
    assert message.startswith("ValueError: {\"error\":") and "has shape [1, 2]" in message, message
    answer = invoke(server, name, b"x", content_type="text/plain")
    assert answer.status_code == 500 and "unsupported content type text/plain" in answer.json()["message"]


def test_the_context_and_the_response_are_the_containers(server):
    attributes = "tfs-model-name=linear,tfs-model-version=1,other=x"
    body = json.dumps({"instances": ROWS[:1].tolist()})
    answer = invoke(server, "echo", body, accept="application/json",
                    **{"X-Amzn-SageMaker-Custom-Attributes": attributes})
    assert answer.status_code == 200, answer.text
    fields = answer.json()
    assert (fields["model_name"], fields["model_version"], fields["method"]) == ("linear", "1", None)
    assert fields["rest_uri"].startswith("http://127.0.0.1:") and fields["rest_uri"].endswith("/versions/1:predict")
    assert (fields["grpc_port"], fields["channel"]) == (None, None)
    assert fields["custom_attributes"] == attributes
    assert (fields["request_content_type"], fields["accept_header"]) == ("application/json", "application/json")
    assert fields["content_length"] == len(body)
    response = fields["response"]
    assert (response["status_code"], response["ok"], response["is_bytes"]) == (200, True, True)
    assert response["content_type"] == "application/json"
    assert json.loads(response["text"]) == response["json"]
    np.testing.assert_allclose(response["json"]["predictions"], ROWS[:1] @ WEIGHTS, rtol=1e-6)
    np.testing.assert_allclose(fields["rest_uri_answer"]["predictions"], [[0.0, 3.5]], rtol=1e-6)


def test_without_content_type_or_accept_the_context_says_json(server):
    answer = server.client.post("/models/echo/invoke", content=json.dumps({"instances": [[0, 0, 0]]}),
                                headers={"Content-Type": "", "Accept": ""})
    assert answer.status_code == 200, answer.text
    fields = answer.json()
    assert (fields["request_content_type"], fields["accept_header"]) == ("application/json", "application/json")


def test_only_predict_is_served(server):
    answer = invoke(server, "echo", json.dumps({"instances": [[0, 0, 0]]}),
                    **{"X-Amzn-SageMaker-Custom-Attributes": "tfs-method=classify"})
    assert answer.status_code == 200, answer.text
    fields = answer.json()
    assert fields["method"] == "classify" and fields["rest_uri"].endswith(":classify")
    assert fields["response"]["status_code"] == 400
    assert fields["response"]["json"] == {"error": ":classify is not served; only :predict is"}


@pytest.mark.parametrize("name, status, words", [
    ("alone", 400, "defines input_handler alone; the TF Serving container's hooks are input_handler and output_handler"),
    ("mixed", 400, "defines handler (the TF Serving container's hooks) together with input_fn; define one set"),
    ("sk", 400, "defines handler, the TF Serving container's hooks, which serve TensorFlow models; this model is served by sklearn"),
])
def test_hooks_that_cannot_be_served_fail_the_load_saying_why(server, root, name, status, words):
    answer = server.load(name, root / name, expect=None)
    assert answer.status_code == status, answer.text
    assert words in answer.json()["message"], answer.text
