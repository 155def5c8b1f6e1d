"""Serial inference pipelines (CONTRACT.md §4) and batch transform (§2)."""

import json

import joblib
import numpy as np
import xgboost

from models import data


def scaled_batch():
    X, _ = data.classification(rows=400, classes=2, seed=11)
    return (X * [1, 100, 0.01, 5] + [0, 50, 3, -7])[:50]


def test_serial_pipeline_chains_like_the_platform(start_server, examples):
    root = examples("pipeline")
    first = start_server(
        MODEL_SERVER_MODEL_DIR=root / "pipeline-preprocess" / "model", SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT="text/csv"
    )
    second = start_server(MODEL_SERVER_MODEL_DIR=root / "pipeline-xgboost" / "model")
    assert first.port != second.port  # each container on its own SAGEMAKER_BIND_TO_PORT

    X = scaled_batch()
    body = "\n".join(",".join(repr(float(v)) for v in row) for row in X).encode()
    # The platform: the client's request goes to container 1; its response body and
    # Content-Type (parameters included) become container 2's request.
    step1 = first.client.post("/invocations", content=body, headers={"Content-Type": "text/csv"})
    assert step1.status_code == 200 and step1.headers["content-type"].startswith("text/csv")
    step2 = second.client.post(
        "/invocations", content=step1.content,
        headers={"Content-Type": step1.headers["content-type"], "Accept": "application/json"},
    )
    assert step2.status_code == 200, step2.text

    scaler = joblib.load(root / "pipeline-preprocess" / "model" / "model.joblib")
    booster = xgboost.Booster(model_file=str(root / "pipeline-xgboost" / "model" / "xgboost-model.json"))
    expected = booster.predict(xgboost.DMatrix(scaler.transform(X)))
    np.testing.assert_allclose(step2.json(), expected, rtol=1e-5)
    assert 0 < np.mean(np.asarray(step2.json()) > 0.5) < 1  # both classes appear


def test_batch_transform_multi_record(start_server, examples):
    root = examples("xgboost")
    server = start_server(
        MODEL_SERVER_MODEL_DIR=root / "xgboost-binary" / "model", SAGEMAKER_BATCH="True",
        SAGEMAKER_BATCH_STRATEGY="MULTI_RECORD", SAGEMAKER_MAX_PAYLOAD_IN_MB="20", SAGEMAKER_MAX_CONCURRENT_TRANSFORMS="2",
    )
    parameters = server.client.get("/execution-parameters").json()
    assert parameters == {"MaxConcurrentTransforms": 2, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 20}

    X, _ = data.classification(rows=90000, classes=2, seed=5)
    booster = xgboost.Booster(model_file=str(root / "xgboost-binary" / "model" / "xgboost-model"))
    expected = booster.predict(xgboost.DMatrix(X))

    csv_body = "\n".join(",".join(repr(float(v)) for v in row) for row in X).encode()
    assert len(csv_body) > 6 * 2**20  # over the real-time limit, inside the batch one
    response = server.client.post("/invocations", content=csv_body, headers={"Content-Type": "text/csv", "Accept": "text/csv"})
    assert response.status_code == 200
    lines = response.text.splitlines()
    assert len(lines) == len(X)  # record for record, in order
    np.testing.assert_allclose([float(v) for v in lines], expected, rtol=1e-6)

    jsonl_body = "\n".join(json.dumps(row) for row in X[:500].tolist()).encode()
    response = server.client.post(
        "/invocations", content=jsonl_body, headers={"Content-Type": "application/jsonlines", "Accept": "application/jsonlines"}
    )
    records = [json.loads(line) for line in response.text.splitlines()]
    assert len(records) == 500
    np.testing.assert_allclose(records, expected[:500], rtol=1e-6)
