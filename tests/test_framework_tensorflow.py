"""TensorFlow over real HTTP in multi-model mode: default files load without user code, answers
equal TensorFlow's own in-process predictions, TF Serving's request and answer shapes, signature
choice, version choice, and the content types."""

import io
import json

import numpy as np
import pytest
from numpy.testing import assert_allclose

from handlers.codecs import media
from models import data
from tests.builders import npy

JSON = {"Content-Type": media.JSON}
TOL = {"rtol": 1e-5, "atol": 1e-6}


def rows(count: int = 8) -> np.ndarray:
    return data.classification(seed=5)[0][:count].astype(np.float32)



def build_two_signatures(directory):
    """A SavedModel with two named inputs (float and int) and two outputs, and a second signature."""
    import tensorflow as tf

    class Scorer(tf.Module):
        def __init__(self):
            super().__init__()
            self.weights = tf.Variable([[1.0], [2.0], [3.0]])

        @tf.function(input_signature=[
            tf.TensorSpec([None, 3], tf.float32, name="x"), tf.TensorSpec([None], tf.int64, name="k"),
        ])
        def score(self, x, k):
            total = tf.matmul(x, self.weights)[:, 0]
            return {"total": total, "scaled": total * tf.cast(k, tf.float32)}

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
        def double(self, x):
            return {"doubled": x * 2.0}

    module = Scorer()
    tf.saved_model.save(module, str(directory), signatures={"serving_default": module.score, "double": module.double})
    return directory


@pytest.fixture(scope="module")
def root(examples):
    root = examples("tensorflow")
    build_two_signatures(root / "tensorflow-two-signatures" / "model" / "7")
    return root


@pytest.fixture(scope="module")
def server(start_module_server, root):
    server = start_module_server(SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=root)
    server.load("saved", root / "tensorflow-savedmodel" / "model")
    server.load("keras", root / "tensorflow-keras" / "model")
    server.load("multi", root / "tensorflow-two-signatures" / "model")
    return server


@pytest.fixture(scope="module")
def expected(root):
    """The same artifacts' predictions in this process, straight from TensorFlow and Keras."""
    import keras
    import tensorflow as tf

    X = tf.constant(rows())
    versions = root / "tensorflow-savedmodel" / "model" / "classifier"
    answers = {
        f"v{v}": tf.saved_model.load(str(versions / str(v))).signatures["serving_default"](features=X)["output_0"].numpy()
        for v in (0, 1)
    }
    answers["keras"] = keras.models.load_model(root / "tensorflow-keras" / "model" / "model.keras")(X).numpy()
    return answers


def invoke(server, name, body=None, headers=None, **kwargs):
    return server.client.post(f"/models/{name}/invoke", content=body, headers=headers or JSON, **kwargs)


def test_default_files_load_without_user_code(server):
    for name in ("saved", "keras", "multi"):
        assert server.client.get(f"/models/{name}").status_code == 200


@pytest.mark.parametrize("name,version", [("saved", "v1"), ("keras", "keras")])
def test_instances_match_in_process_predictions(server, expected, name, version):
    response = invoke(server, name, json={"instances": rows().tolist()})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    predictions = np.array(response.json()["predictions"])
    assert predictions.shape == (8, 3)
    assert_allclose(predictions, expected[version], **TOL)
    assert len(set(predictions.argmax(axis=1))) > 1


def test_highest_savedmodel_version_wins(server, expected):
    predictions = np.array(invoke(server, "saved", json={"instances": rows().tolist()}).json()["predictions"])
    assert_allclose(predictions, expected["v1"], **TOL)
    assert not np.allclose(predictions, expected["v0"], atol=1e-3)


def test_instances_as_objects_keyed_by_input_name(server, expected):
    body = {"instances": [{"features": row} for row in rows().tolist()]}
    response = invoke(server, "saved", json=body)
    assert response.status_code == 200, response.text
    assert_allclose(response.json()["predictions"], expected["v1"], **TOL)


@pytest.mark.parametrize("inputs", ["array", "object"])
def test_columnar_inputs_answer_outputs(server, expected, inputs):
    value = rows().tolist() if inputs == "array" else {"features": rows().tolist()}
    response = invoke(server, "saved", json={"inputs": value})
    assert response.status_code == 200, response.text
    assert list(response.json()) == ["outputs"]
    assert_allclose(response.json()["outputs"], expected["v1"], **TOL)


def test_plain_array_and_one_bare_instance(server, expected):
    response = invoke(server, "keras", json=rows().tolist())
    assert_allclose(response.json()["predictions"], expected["keras"], **TOL)
    response = invoke(server, "keras", json=rows()[0].tolist())
    assert response.status_code == 200, response.text
    assert_allclose(response.json()["predictions"], expected["keras"][:1], rtol=1e-4, atol=1e-5)


def test_csv_in_csv_out(server, expected):
    body = "\n".join(",".join(repr(float(v)) for v in row) for row in rows()).encode()
    response = invoke(server, "saved", body, {"Content-Type": "text/csv", "Accept": "text/csv"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    answer = np.loadtxt(io.StringIO(response.text), delimiter=",", ndmin=2)
    assert_allclose(answer, expected["v1"], **TOL)


def test_npy_in_npy_out(server, expected):
    headers = {"Content-Type": "application/x-npy", "Accept": "application/x-npy"}
    response = invoke(server, "keras", npy(rows()), headers)
    assert response.status_code == 200, response.text
    answer = np.load(io.BytesIO(response.content), allow_pickle=False)
    assert answer.dtype == np.float32
    assert_allclose(answer, expected["keras"], **TOL)


def test_npy_float64_is_cast_to_the_signature_dtype(server, expected):
    headers = {"Content-Type": "application/x-npy"}
    response = invoke(server, "saved", npy(rows().astype(np.float64)), headers)
    assert response.status_code == 200, response.text
    assert_allclose(response.json()["predictions"], expected["v1"], **TOL)


def test_jsonlines_out(server, expected):
    response = invoke(server, "saved", json={"instances": rows(3).tolist()},
                      headers={**JSON, "Accept": "application/jsonlines"})
    assert response.status_code == 200, response.text
    lines = [line for line in response.text.splitlines() if line]
    assert len(lines) == 3
    assert_allclose([json.loads(line) for line in lines], expected["v1"][:3], **TOL)


def test_unknown_signature_is_400_naming_the_available_ones(server):
    headers = {**JSON, "X-Amzn-SageMaker-Custom-Attributes": "tfs-signature=nope"}
    response = invoke(server, "saved", json={"instances": rows(2).tolist()}, headers=headers)
    assert response.status_code == 400, response.text
    message = response.json()["message"]
    assert "nope" in message and "serving_default" in message


def test_only_the_predict_method(server):
    headers = {**JSON, "X-Amzn-SageMaker-Custom-Attributes": "tfs-method=classify"}
    response = invoke(server, "saved", json={"instances": rows(2).tolist()}, headers=headers)
    assert response.status_code == 400
    assert "predict" in response.json()["message"]
    headers = {**JSON, "X-Amzn-SageMaker-Custom-Attributes": "tfs-method=predict"}
    assert invoke(server, "saved", json={"instances": rows(2).tolist()}, headers=headers).status_code == 200


def test_named_inputs_several_outputs_and_dtype_cast(server):
    x = [[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]
    k = [2.0, 3.0]  # floats for an int64 input: cast to the signature's dtype
    response = invoke(server, "multi", json={"instances": [{"x": x[0], "k": k[0]}, {"x": x[1], "k": k[1]}]})
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [{"scaled": 2.0, "total": 1.0}, {"scaled": 15.0, "total": 5.0}]}
    response = invoke(server, "multi", json={"inputs": {"x": x, "k": k}})
    assert response.json() == {"outputs": {"scaled": [2.0, 15.0], "total": [1.0, 5.0]}}


def test_a_named_signature_is_chosen_by_custom_attribute(server):
    headers = {**JSON, "X-Amzn-SageMaker-Custom-Attributes": "tfs-signature=double"}
    response = invoke(server, "multi", json={"instances": [[1.0, 2.0, 3.0]]}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [[2.0, 4.0, 6.0]]}  # one output: bare values


def test_several_outputs_cannot_be_csv(server):
    response = invoke(server, "multi", json={"inputs": {"x": [[1.0, 2.0, 3.0]], "k": [1]}},
                      headers={**JSON, "Accept": "text/csv"})
    assert response.status_code == 406


@pytest.mark.parametrize("body,needle", [
    (b"{not json", "JSON"),
    (b'{"instances": [[1, 2, 3]]}', "shape"),
    (b'{"instances": [["a", "b", "c", "d"]]}', "number"),
    (b'{"inputs": {"wrong": [[1, 2, 3, 4]]}}', "features"),
    (b'{"instances": [[1, 2], [1, 2, 3]]}', "rectangular"),
])
def test_bad_bodies_are_400_with_a_message(server, body, needle):
    response = invoke(server, "saved", body)
    assert response.status_code == 400, response.text
    assert needle in response.json()["message"]
    assert "Traceback" not in response.text
