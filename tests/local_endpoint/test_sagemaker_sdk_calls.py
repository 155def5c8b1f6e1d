"""The SageMaker Python SDK 2.x's own calls, made with boto3, against the local endpoint.

The SDK cannot share the dev venv (sagemaker 2.x pins protobuf<7), so these tests make the calls
its high-level classes make, read from its source (``sagemaker/model.py``,
``sagemaker/predictor_async.py``, ``sagemaker/async_inference/``):

- ``SKLearnModel(entry_point=..., source_dir=..., image_uri=...).deploy()`` tars ``source_dir``
  into ``s3://<default bucket>/<model>/sourcedir.tar.gz`` and creates the model with
  ``SAGEMAKER_PROGRAM``, ``SAGEMAKER_SUBMIT_DIRECTORY`` (that url), ``SAGEMAKER_CONTAINER_LOG_LEVEL``
  and ``SAGEMAKER_REGION``: the container fetches the code itself, with the credentials the
  platform gives it.
- ``deploy(async_inference_config=AsyncInferenceConfig())`` fills in ``S3OutputPath`` and
  ``S3FailurePath`` under the default bucket (``sagemaker-<region>-<account>``, the account from
  STS); ``AsyncPredictor.predict_async(data)`` puts the serialized data in S3 with the
  serializer's ContentType and calls InvokeEndpointAsync with ``InputLocation`` and ``Accept``
  only; ``get_result(WaiterConfig(...))`` runs S3's ``object_exists`` waiter (HeadObject) on the
  returned OutputLocation and FailureLocation in two threads, GetObjects whichever appears first
  and reads it with the predictor's deserializer (``json.load`` for JSONDeserializer), raising
  ``AsyncInferenceModelError`` with what it read from the failure object.
"""

import io
import json
import tarfile
import textwrap
import threading
import time
import uuid

import pytest

from local.examples.steps import ROLE, wait_status
from models.layout import archive
from tests.builders import sklearn_model
from tests.local_endpoint.support import local_endpoint

local = local_endpoint()
REGION = "us-east-1"
ROW = [0.5, 1.2, -0.3, 2.0]

ENTRY_POINT = """
import os
import joblib

def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))

def predict_fn(data, model):
    return model.predict(data) + 1000  # told apart from the default handler's answer
"""


@pytest.fixture(scope="module")
def bucket(local):
    """``Session.default_bucket()``: the account from STS, then the bucket made if missing."""
    account = local.boto("sts").get_caller_identity()["Account"]
    name = f"sagemaker-{REGION}-{account}"
    s3 = local.boto("s3")
    try:
        s3.head_bucket(Bucket=name)
    except s3.exceptions.ClientError:
        s3.create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def model_data(local, bucket, tmp_path_factory):
    """A model.tar.gz without code of its own, as a training job leaves it."""
    root = tmp_path_factory.mktemp("models")
    sklearn_model(root / "plain" / "model")
    local.boto("s3").upload_file(str(archive(root, "plain")), bucket, "training/output/model.tar.gz")
    return f"s3://{bucket}/training/output/model.tar.gz"


def sourcedir_tar(files: dict[str, str]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, text in files.items():
            data = textwrap.dedent(text).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def create_and_deploy(sm, name: str, container: dict, async_config: dict | None = None) -> dict:
    """``Model.deploy``: CreateModel, CreateEndpointConfig, CreateEndpoint, then the wait."""
    sm.create_model(ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer=container)
    config = {"EndpointConfigName": name, "ProductionVariants": [{
        "VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}]}
    if async_config is not None:
        config["AsyncInferenceConfig"] = async_config
    sm.create_endpoint_config(**config)
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    return wait_status(sm, name, timeout=180)


def test_sklearn_model_with_entry_point_and_source_dir_fetches_its_code(local, bucket, model_data):
    name = "sklearn-script-mode"
    s3 = local.boto("s3")
    s3.put_object(Bucket=bucket, Key=f"{name}/sourcedir.tar.gz", Body=sourcedir_tar({"inference.py": ENTRY_POINT}))
    described = create_and_deploy(local.boto("sagemaker"), name, {
        "Image": "sagemaker-model-server:latest", "ModelDataUrl": model_data,
        "Environment": {
            "SAGEMAKER_PROGRAM": "inference.py",
            "SAGEMAKER_SUBMIT_DIRECTORY": f"s3://{bucket}/{name}/sourcedir.tar.gz",
            "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
            "SAGEMAKER_REGION": REGION,
        },
    })
    assert described["EndpointStatus"] == "InService", described.get("FailureReason")
    answer = local.boto("sagemaker-runtime").invoke_endpoint(  # Predictor.predict with CSVSerializer
        EndpointName=name, ContentType="text/csv", Accept="application/json", Body=",".join(map(str, ROW)))
    assert json.loads(answer["Body"].read()) >= [1000]  # the entry point's predict_fn answered


@pytest.fixture(scope="module")
def async_endpoint(local, bucket, model_data):
    """``deploy(async_inference_config=AsyncInferenceConfig())``: both paths the SDK's defaults."""
    name = "sklearn-async-sdk"
    described = create_and_deploy(local.boto("sagemaker"), name, {"Image": "sagemaker-model-server:latest",
                                                                  "ModelDataUrl": model_data}, async_config={
        "OutputConfig": {"S3OutputPath": f"s3://{bucket}/async-endpoint-outputs/{name}",
                         "S3FailurePath": f"s3://{bucket}/async-endpoint-failures/{name}"}})
    assert described["EndpointStatus"] == "InService", described.get("FailureReason")
    return name


def predict_async(local, bucket: str, endpoint: str, data) -> dict:
    """``AsyncPredictor.predict_async(data)`` with the JSONSerializer and JSONDeserializer."""
    key = f"async-endpoint-inputs/{endpoint}/{time.strftime('%Y-%m-%d-%H-%M-%S')}-{uuid.uuid4()}"
    local.boto("s3").put_object(Body=json.dumps(data), Bucket=bucket, Key=key, ContentType="application/json")
    return local.boto("sagemaker-runtime").invoke_endpoint_async(
        InputLocation=f"s3://{bucket}/{key}", EndpointName=endpoint, Accept="application/json")


def get_result(local, response: dict, delay: int = 1, max_attempts: int = 60):
    """``AsyncInferenceResponse.get_result(WaiterConfig(...))``: (kind, what json.load read)."""
    s3 = local.boto("s3")
    paths = {"output": response["OutputLocation"], "failure": response.get("FailureLocation")}
    assert paths["failure"], "the SDK waits on the failure path only when the response names it"
    found = {kind: threading.Event() for kind in paths}

    def wait(kind: str) -> None:
        bucket, key = paths[kind][len("s3://"):].split("/", 1)
        try:
            s3.get_waiter("object_exists").wait(Bucket=bucket, Key=key,
                                                WaiterConfig={"Delay": delay, "MaxAttempts": max_attempts})
            found[kind].set()
        except Exception:  # botocore's WaiterError: the SDK's PollingTimeoutError
            pass

    threads = [threading.Thread(target=wait, args=(kind,), daemon=True) for kind in paths]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + delay * max_attempts + 5
    while not any(event.is_set() for event in found.values()) and time.monotonic() < deadline:
        time.sleep(0.2)
    kind = "output" if found["output"].is_set() else "failure"
    assert found[kind].is_set(), "neither the output nor the failure appeared"
    bucket, key = paths[kind][len("s3://"):].split("/", 1)
    return kind, json.load(s3.get_object(Bucket=bucket, Key=key)["Body"])  # JSONDeserializer.deserialize


def test_async_predictor_reads_its_result_from_the_output_location(local, bucket, async_endpoint):
    response = predict_async(local, bucket, async_endpoint, [ROW, ROW])
    assert response["OutputLocation"].startswith(f"s3://{bucket}/async-endpoint-outputs/{async_endpoint}/")
    assert response["FailureLocation"].startswith(f"s3://{bucket}/async-endpoint-failures/{async_endpoint}/")
    kind, result = get_result(local, response)
    assert kind == "output", result
    assert len(result) == 2


def test_async_predictor_reads_a_model_error_from_the_failure_location(local, bucket, async_endpoint):
    response = predict_async(local, bucket, async_endpoint, [[1.0, 2.0]])  # 2 features; the model has 4
    kind, failure = get_result(local, response)
    assert kind == "failure"
    assert failure["code"] == "ModelError" and failure["OriginalStatusCode"] == 400, failure
    assert "Received client error (400)" in failure["message"]
