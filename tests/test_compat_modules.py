"""Scripts written for the AWS scikit-learn and XGBoost containers (issue 8, point 3): their
imports of ``sagemaker_containers`` and ``sagemaker_xgboost_container`` resolve to this server's
modules (compat/), over HTTP on the real server. The scripts below are our own, written in the
shape of the public examples: training and serving in one file, the training under ``__main__``,
``encoders``/``worker.Response`` in the hooks, ``xgb_encoders.decode`` giving a DMatrix.
"""

import pickle
import textwrap

import numpy as np
import pytest
import xgboost

from tests.builders import classifier, sklearn_model

SKLEARN_SCRIPT = """
import argparse, os
import joblib
import numpy as np
from sagemaker_containers.beta.framework import content_types, encoders, env, errors, modules, transformer, worker

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR"))
    raise SystemExit("training happens elsewhere")

def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))

def input_fn(input_data, content_type):
    if content_type not in (content_types.CSV, content_types.JSON, content_types.NPY):
        raise errors.UnsupportedFormatError(content_type)
    return encoders.decode(input_data, content_type)

def predict_fn(input_data, model):
    return np.column_stack([model.predict(input_data), model.predict_proba(input_data).max(axis=1)])

def output_fn(prediction, accept):
    if accept == content_types.JSON:
        return worker.Response(encoders.encode({"predictions": prediction[:, 0].tolist()}, accept), mimetype=accept)
    if accept == "text/csv":
        return worker.Response(encoders.encode(prediction, accept), mimetype=accept)
    raise errors.ClientError(f"{accept} accept type is not supported by this script")
"""

XGBOOST_SCRIPT = """
import json, os, pickle as pkl
import numpy as np
import xgboost as xgb
from sagemaker_containers import entry_point
from sagemaker_containers.beta.framework import content_types, encoders, worker
from sagemaker_xgboost_container import distributed, encoder as xgb_encoders
from sagemaker_xgboost_container.data_utils import get_dmatrix, get_content_type, LIBSVM

def model_fn(model_dir):
    with open(os.path.join(model_dir, "model.bin"), "rb") as f:
        return pkl.load(f)

def input_fn(request_body, request_content_type):
    if request_content_type == content_types.JSON:
        features = json.loads(request_body)["instances"][0]["features"]
        return xgb.DMatrix(np.array(features).reshape((1, -1)))
    return xgb_encoders.decode(request_body, request_content_type)

def output_fn(prediction, accept):
    score = float(np.array(prediction)[0])
    if accept == "application/json":
        body = {"predictions": [{"score": score, "predicted_label": int(score > 0.5)}]}
        return worker.Response(json.dumps(body), mimetype=accept)
    return worker.Response(encoders.encode("yes" if score > 0.5 else "no", accept), mimetype=accept)
"""

UNKNOWN_NAME_SCRIPT = """
from sagemaker_xgboost_container.encoder import no_such_decoder
"""


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("compat")
    sklearn_model(root / "sk", code=SKLEARN_SCRIPT)
    X = np.random.default_rng(2).normal(size=(200, 4))
    booster = xgboost.train({"objective": "binary:logistic", "max_depth": 2}, xgboost.DMatrix(X, label=X[:, 0] + X[:, 1] > 0), 10)
    (root / "xgb" / "code").mkdir(parents=True)
    (root / "xgb" / "model.bin").write_bytes(pickle.dumps(booster))
    (root / "xgb" / "code" / "inference.py").write_text(textwrap.dedent(XGBOOST_SCRIPT))
    sklearn_model(root / "unknown", code=UNKNOWN_NAME_SCRIPT)
    return root


@pytest.fixture(scope="module")
def server(start_module_server, root):
    return start_module_server(SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=root)


@pytest.fixture(scope="module")
def loaded(server):
    for name in ("sk", "xgb"):
        answer = server.client.post("/models", json={"model_name": name, "url": name})
        assert answer.status_code == 200, answer.text
    return server


@pytest.fixture(scope="module")
def booster(root):
    return pickle.loads((root / "xgb" / "model.bin").read_bytes())


def test_sagemaker_containers_script_serves_json_and_csv(loaded):
    model, X = classifier()
    body = "\n".join(",".join(str(v) for v in row) for row in X[:3])
    answer = loaded.client.post("/models/sk/invoke", content=body, headers={"Content-Type": "text/csv", "Accept": "application/json"})
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json", answer.text
    assert answer.json() == {"predictions": model.predict(X[:3]).astype(float).tolist()}
    answer = loaded.client.post("/models/sk/invoke", json=X[:2].tolist(), headers={"Accept": "text/csv"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    table = np.loadtxt(answer.text.splitlines(), delimiter=",", ndmin=2)
    np.testing.assert_allclose(table[:, 1], model.predict_proba(X[:2]).max(axis=1), rtol=1e-6)


def test_toolkit_errors_keep_their_status(loaded):
    answer = loaded.client.post("/models/sk/invoke", content=b"x", headers={"Content-Type": "text/plain"})
    assert answer.status_code == 415 and "text/plain is not supported" in answer.json()["message"], answer.text
    answer = loaded.client.post("/models/sk/invoke", content=b"1,2,3,4", headers={"Content-Type": "text/csv", "Accept": "application/x-npy"})
    assert answer.status_code == 400 and "application/x-npy accept type" in answer.json()["message"], answer.text


@pytest.mark.parametrize("content_type, body", [
    ("text/libsvm", b"0:1.5 1:0.5 3:-1"),
    ("text/x-libsvm", b"1 0:1.5 1:0.5 3:-1"),
    ("text/csv", b"1.5,0.5,0,-1"),
])
def test_xgboost_container_script_decodes_to_a_dmatrix(loaded, booster, content_type, body):
    expected = float(booster.inplace_predict(np.array([[1.5, 0.5, 0 if content_type == "text/csv" else np.nan, -1]]))[0])
    answer = loaded.client.post("/models/xgb/invoke", content=body, headers={"Content-Type": content_type, "Accept": "application/json"})
    assert answer.status_code == 200, answer.text
    (prediction,) = answer.json()["predictions"]
    assert prediction["score"] == pytest.approx(expected, rel=1e-6)
    assert prediction["predicted_label"] == int(expected > 0.5)


def test_xgboost_container_script_json_and_csv_answers(loaded, booster):
    features = [-2.0, -1.0, 0.5, 0.0]
    answer = loaded.client.post("/models/xgb/invoke", json={"instances": [{"features": features}]}, headers={"Accept": "text/csv"})
    assert answer.status_code == 200, answer.text
    assert answer.text.strip() == ("yes" if booster.inplace_predict(np.array([features]))[0] > 0.5 else "no")


def test_xgb_encoders_errors_are_415_and_400(loaded):
    headers = {"Content-Type": "application/x-npy", "Accept": "application/json"}
    answer = loaded.client.post("/models/xgb/invoke", content=b"1,2", headers=headers)
    assert answer.status_code == 415 and "application/x-npy is not supported" in answer.json()["message"], answer.text
    headers["Content-Type"] = "text/libsvm"
    answer = loaded.client.post("/models/xgb/invoke", content=b"1 0:1 x", headers=headers)
    assert answer.status_code == 400 and "libsvm line 1: 'x'" in answer.json()["message"], answer.text


def test_an_unknown_name_is_a_clear_import_error(server):
    answer = server.client.post("/models", json={"model_name": "unknown", "url": "unknown"})
    assert answer.status_code == 500, answer.text
    message = answer.json()["message"]
    assert "ImportError" in message and "cannot import name 'no_such_decoder'" in message, message
    assert "sagemaker_xgboost_container.encoder" in message
