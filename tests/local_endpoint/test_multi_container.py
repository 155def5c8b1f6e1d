"""Multi-container endpoints through the local endpoint: Direct (TargetContainerHostname) and Serial.

Each container is its own server process on its own port of the instance's safe range; in a
serial pipeline each answer is the next request with its Content-Type carried, so the sklearn
scaler's CSV reaches XGBoost as the platform would hand it over.
"""

import json

import joblib
import numpy as np
import pytest
import xgboost

from local.examples.steps import deploy, upload
from models.examples import pipeline
from models.examples import sklearn as sklearn_examples
from models.examples import xgboost as xgboost_examples
from models.layout import archive
from tests.local_endpoint.support import local_endpoint

BUCKET = "containers"
ROWS = np.array([[0.5, 80.0, 3.1, -6.0], [-1.0, 140.0, 2.9, -9.0]])


local = local_endpoint()


@pytest.fixture(scope="module")
def built(local, tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    ids = pipeline.build(root) + sklearn_examples.build(root) + xgboost_examples.build(root)
    upload(local.boto("s3"), BUCKET, {f"{i}/model.tar.gz": archive(root, i) for i in ids})
    return root


def container(model_id: str, hostname: str, **environment) -> dict:
    return {"ContainerHostname": hostname, "Image": "local", "ModelDataUrl": f"s3://{BUCKET}/{model_id}/model.tar.gz",
            "Environment": environment}


def csv(rows) -> bytes:
    return "\n".join(",".join(str(v) for v in row) for row in rows).encode()


def test_serial_pipeline_feeds_each_answer_to_the_next(local, built):
    sm, runtime = local.boto("sagemaker"), local.boto("sagemaker-runtime")
    deploy(sm, "pipeline", [
        container("pipeline-preprocess", "preprocess", SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT="text/csv"),
        container("pipeline-xgboost", "xgboost"),
    ], mode="Serial", timeout=180)
    answer = runtime.invoke_endpoint(EndpointName="pipeline", Body=csv(ROWS), ContentType="text/csv",
                                     Accept="application/json")
    assert answer["ContentType"].startswith("application/json")
    got = np.array(json.loads(answer["Body"].read())).ravel()
    scaler = joblib.load(built / "pipeline-preprocess" / "model" / "model.joblib")
    booster = xgboost.Booster(model_file=str(built / "pipeline-xgboost" / "model" / "xgboost-model.json"))
    expected = booster.predict(xgboost.DMatrix(scaler.transform(ROWS)))
    np.testing.assert_allclose(got, expected, rtol=1e-4)

    with pytest.raises(runtime.exceptions.ModelError) as caught:  # 3 columns: the scaler refuses them
        runtime.invoke_endpoint(EndpointName="pipeline", Body=b"1,2,3", ContentType="text/csv")
    assert "from preprocess" in caught.value.response["Error"]["Message"]
    assert caught.value.response["OriginalStatusCode"] in (400, 500)
    with pytest.raises(runtime.exceptions.ValidationError, match="Direct mode"):
        runtime.invoke_endpoint(EndpointName="pipeline", Body=csv(ROWS), ContentType="text/csv",
                                TargetContainerHostname="xgboost")
    sm.delete_endpoint(EndpointName="pipeline")


def test_direct_mode_invokes_the_container_named(local, built):
    sm, runtime = local.boto("sagemaker"), local.boto("sagemaker-runtime")
    deploy(sm, "direct", [container("sklearn-iris", "iris"), container("xgboost-binary", "binary")],
           mode="Direct", timeout=180)
    (instance,) = local.instances("direct")["instances"]
    ports = [c["port"] for c in instance["containers"]]
    assert len(set(ports)) == 2
    iris = runtime.invoke_endpoint(EndpointName="direct", TargetContainerHostname="iris",
                                   Body=b"5.1,3.5,1.4,0.2", ContentType="text/csv")
    assert iris["Body"].read().strip() in (b"[0]", b"[1]", b"[2]")  # a class label
    binary = runtime.invoke_endpoint(EndpointName="direct", TargetContainerHostname="binary",
                                     Body=b"5.1,3.5,1.4,0.2", ContentType="text/csv")
    probability = json.loads(binary["Body"].read())[0]
    assert 0.0 <= probability <= 1.0 and not float(probability).is_integer()  # a probability
    with pytest.raises(runtime.exceptions.ValidationError, match="TargetContainerHostname is required"):
        runtime.invoke_endpoint(EndpointName="direct", Body=b"5.1,3.5,1.4,0.2", ContentType="text/csv")
    with pytest.raises(runtime.exceptions.ValidationError, match="does not exist"):
        runtime.invoke_endpoint(EndpointName="direct", TargetContainerHostname="nobody", Body=b"1",
                                ContentType="text/csv")
    sm.delete_endpoint(EndpointName="direct")


def test_container_rules_are_checked_at_create_model(local):
    sm = local.boto("sagemaker")
    with pytest.raises(sm.exceptions.ClientError, match="at most 15 containers|less than or equal to 15"):
        sm.create_model(ModelName="too-many", ExecutionRoleArn="arn:aws:iam::123456789012:role/local",
                        Containers=[{"Image": "local", "ContainerHostname": f"c{i}"} for i in range(16)])
    with pytest.raises(sm.exceptions.ClientError, match="unique"):
        sm.create_model(ModelName="same-names", ExecutionRoleArn="arn:aws:iam::123456789012:role/local",
                        Containers=[{"Image": "local", "ContainerHostname": "c"}] * 2,
                        InferenceExecutionConfig={"Mode": "Direct"})
