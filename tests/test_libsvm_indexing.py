"""libsvm bodies over HTTP, counted as XGBoost's reader counts them (issue 20): zero-based by
default, as the AWS XGBoost container's ``xgb.DMatrix(file)`` reads a body; one-based with
``Content-Type: text/libsvm; indexing_mode=1``, detected with ``indexing_mode=-1``. The same
through a script for the AWS container that decodes with ``sagemaker_xgboost_container.encoder``
and predicts itself, where XGBoost's native check failure must come back a short 400, not a 500.

The reference is XGBoost's own reader: each body written to a file and loaded with the same
``indexing_mode``, the booster's predictions on that compared with the server's answer.
"""

import pickle
import textwrap

import numpy as np
import pytest
import xgboost

pytestmark = pytest.mark.filterwarnings("ignore:.*Text file input has been deprecated")  # the reference reader

ONE_BASED = b"1 1:0.5 2:-0.3 3:0.2 4:0.1\n0 2:1.5 4:-2\n1 1:1 3:0.5\n"  # libsvm's own convention
ZERO_BASED = b"1 0:0.5 1:-0.3 2:0.2 3:0.1\n0 1:1.5 3:-2\n"

SCRIPT = """
import pickle, json, os
from sagemaker_xgboost_container import encoder as xgb_encoders

def model_fn(model_dir):
    with open(os.path.join(model_dir, "model.bin"), "rb") as f:
        return pickle.load(f)

def input_fn(request_body, request_content_type):
    if request_content_type == "text/libsvm":
        return xgb_encoders.libsvm_to_dmatrix(request_body)
    return xgb_encoders.decode(request_body, request_content_type)

def predict_fn(input_data, model):
    return model.predict(input_data)

def output_fn(prediction, accept):
    return json.dumps(prediction.tolist())
"""


@pytest.fixture(scope="module")
def booster():
    X = np.random.default_rng(5).normal(size=(300, 4))
    return xgboost.train({"objective": "reg:squarederror", "max_depth": 3, "nthread": 1},
                         xgboost.DMatrix(X, label=X @ [2.0, -1.0, 0.5, 1.5]), 10)


@pytest.fixture(scope="module")
def server(start_module_server, tmp_path_factory, booster):
    root = tmp_path_factory.mktemp("libsvm-indexing")
    (root / "xgb").mkdir()
    booster.save_model(root / "xgb" / "xgboost-model.json")
    (root / "script" / "code").mkdir(parents=True)
    (root / "script" / "model.bin").write_bytes(pickle.dumps(booster))
    (root / "script" / "code" / "inference.py").write_text(textwrap.dedent(SCRIPT))
    server = start_module_server(SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=root)
    for name in ("xgb", "script"):
        assert server.client.post("/models", json={"model_name": name, "url": name}).status_code == 200
    return server


def reference(booster, tmp_path, body: bytes, mode: int) -> list[float]:
    """The booster's predictions on the body as XGBoost's reader loads it with ``indexing_mode``."""
    (tmp_path / "body.libsvm").write_bytes(body)
    return booster.predict(xgboost.DMatrix(f"{tmp_path / 'body.libsvm'}?format=libsvm&indexing_mode={mode}")).tolist()


def invoke(server, name, body, content_type):
    return server.client.post(f"/models/{name}/invoke", content=body,
                              headers={"Content-Type": content_type, "Accept": "application/json"})


def predictions(answer) -> list[float]:
    assert answer.status_code == 200, answer.text
    value = answer.json()
    return value["predictions"] if isinstance(value, dict) else value


@pytest.mark.parametrize("name", ["xgb", "script"])
@pytest.mark.parametrize("body, parameter, mode", [
    (ONE_BASED, "; indexing_mode=1", 1),
    (ONE_BASED, "; indexing_mode=-1", -1),
    (ZERO_BASED, "; indexing_mode=-1", -1),
    (ZERO_BASED, "", 0),
    (ZERO_BASED, "; indexing_mode=0", 0),
])
def test_predictions_match_xgboosts_reader(server, booster, tmp_path, name, body, parameter, mode):
    content_type = ("text/x-libsvm" if name == "script" else "text/libsvm") + parameter
    expected = reference(booster, tmp_path, body, mode)
    assert predictions(invoke(server, name, body, content_type)) == pytest.approx(expected, rel=1e-6)


def test_a_one_based_body_read_zero_based_is_a_400_saying_how_to_send_it(server):
    answer = invoke(server, "xgb", ONE_BASED, "text/libsvm")
    assert answer.status_code == 400, answer.text
    message = answer.json()["message"]
    assert "uses feature index 4; the model has 4 features (0 to 3)" in message, message
    assert "send Content-Type: text/libsvm; indexing_mode=1" in message, message


def test_the_scripts_native_check_failure_is_a_short_400(server, booster, tmp_path):
    """``libsvm_to_dmatrix`` reads as the container does (zero-based: 5 columns), and the script's
    own ``model.predict`` fails XGBoost's check: the request's fault, a 400 without native text."""
    with pytest.raises(xgboost.core.XGBoostError, match="Check failed"):
        reference(booster, tmp_path, ONE_BASED, 0)
    answer = invoke(server, "script", ONE_BASED, "text/libsvm")
    assert answer.status_code == 400, answer.text
    assert answer.json()["message"] == ("the model cannot predict on this input: "
                                        "Number of columns does not match number of features in booster (4 vs. 5)")


def test_index_0_in_a_body_read_one_based_is_a_400(server):
    for name in ("xgb", "script"):
        answer = invoke(server, name, b"1 1:0.5\n0 0:0.2\n", "text/x-libsvm; indexing_mode=1")
        assert answer.status_code == 400, answer.text
        assert answer.json()["message"].startswith("libsvm line 2 uses index 0, and indexing_mode=1 reads"), answer.text
