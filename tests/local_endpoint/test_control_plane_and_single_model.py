"""The local endpoint's control plane and a single-model endpoint, through boto3 as a user calls them."""

import json
import os
import signal
import time

import psutil
import pytest
from botocore.exceptions import ClientError

from local.examples.steps import ROLE, deploy, wait_status
from models.examples import sklearn as sklearn_examples
from models.layout import archive
from tests.local_endpoint.support import local_endpoint

local = local_endpoint()


@pytest.fixture(scope="module")
def iris_url(local, tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    sklearn_examples.build(root)
    s3 = local.boto("s3")
    s3.create_bucket(Bucket="single-models")
    s3.upload_file(str(archive(root, "sklearn-iris")), "single-models", "iris/model.tar.gz")
    s3.upload_file(str(archive(root, "sklearn-ridge")), "single-models", "ridge/model.tar.gz")
    return "s3://single-models/iris/model.tar.gz"


@pytest.fixture(scope="module")
def ridge_url(iris_url):
    return "s3://single-models/ridge/model.tar.gz"


def error_of(call, **kwargs) -> dict:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    return caught.value.response


def test_control_plane_errors_are_the_services(local, iris_url):
    sm = local.boto("sagemaker")
    bad_name = error_of(sm.create_model, ModelName="not a name!", PrimaryContainer={"Image": "x"})
    assert bad_name["Error"]["Code"] == "ValidationException"
    assert "at 'modelName' failed to satisfy constraint" in bad_name["Error"]["Message"]
    missing = error_of(sm.describe_endpoint, EndpointName="nowhere")
    assert missing["Error"]["Code"] == "ValidationException"
    assert 'Could not find endpoint "arn:aws:sagemaker:us-east-1:123456789012:endpoint/nowhere"' in missing["Error"]["Message"]
    no_model = error_of(sm.create_endpoint_config, EndpointConfigName="c", ProductionVariants=[
        {"VariantName": "v", "ModelName": "ghost", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    assert "Could not find model" in no_model["Error"]["Message"]
    sm.create_model(ModelName="twice", PrimaryContainer={"Image": "x", "ModelDataUrl": iris_url}, ExecutionRoleArn=ROLE)
    again = error_of(sm.create_model, ModelName="twice", PrimaryContainer={"Image": "x"}, ExecutionRoleArn=ROLE)
    assert "Cannot create already existing model" in again["Error"]["Message"]
    both = error_of(sm.create_model, ModelName="both", PrimaryContainer={"Image": "x"}, Containers=[{"Image": "x"}])
    assert "Exactly one of PrimaryContainer and Containers" in both["Error"]["Message"]
    unchecked = local.boto("sagemaker", parameter_validation=False)  # as a client that skips botocore's checks
    zero = error_of(unchecked.create_endpoint_config, EndpointConfigName="c", ProductionVariants=[
        {"VariantName": "v", "ModelName": "twice", "InitialInstanceCount": 0, "InstanceType": "ml.m5.large"}])
    assert "greater than or equal to 1" in zero["Error"]["Message"]
    runtime = local.boto("sagemaker-runtime")
    unknown = error_of(runtime.invoke_endpoint, EndpointName="nowhere", Body=b"1")
    assert unknown["Error"]["Code"] == "ValidationError"
    assert unknown["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_single_model_endpoint_lifecycle(local, iris_url, ridge_url):
    sm, runtime = local.boto("sagemaker"), local.boto("sagemaker-runtime")
    described = deploy(sm, "iris", {"Image": "local", "ModelDataUrl": iris_url})
    assert described["ProductionVariants"][0]["CurrentInstanceCount"] == 1
    answer = runtime.invoke_endpoint(
        EndpointName="iris", Body=b"5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3", ContentType="text/csv", Accept="text/csv"
    )
    assert answer["ContentType"] == "text/csv"  # the container's type, no charset added on the way
    assert len(answer["Body"].read().decode().split()) == 2
    assert answer["InvokedProductionVariant"] == "AllTraffic"

    with pytest.raises(runtime.exceptions.ModelError) as caught:
        runtime.invoke_endpoint(EndpointName="iris", Body=b"not,numbers", ContentType="text/csv")
    error = caught.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert error["OriginalStatusCode"] == 400
    assert "CSV body" in error["OriginalMessage"]
    assert error["LogStreamArn"].startswith("arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/iris")

    assert [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]] == ["iris"]
    sm.update_endpoint_weights_and_capacities(EndpointName="iris", DesiredWeightsAndCapacities=[
        {"VariantName": "AllTraffic", "DesiredInstanceCount": 2}])
    assert sm.describe_endpoint(EndpointName="iris")["EndpointStatus"] == "Updating"
    described = wait_status(sm, "iris")
    assert described["EndpointStatus"] == "InService"
    assert described["ProductionVariants"][0]["CurrentInstanceCount"] == 2
    pids = [c["pid"] for i in local.instances("iris")["instances"] for c in i["containers"]]
    assert len(pids) == 2 and all(psutil.pid_exists(pid) for pid in pids)
    for _ in range(6):
        runtime.invoke_endpoint(EndpointName="iris", Body=b"5.1,3.5,1.4,0.2", ContentType="text/csv")
    assert all(i["served"] > 0 for i in local.instances("iris")["instances"])  # both instances took requests

    # a new configuration: its instances start beside the old ones, then take the traffic
    sm.create_model(ModelName="ridge", PrimaryContainer={"Image": "local", "ModelDataUrl": ridge_url},
                    ExecutionRoleArn=ROLE)
    sm.create_endpoint_config(EndpointConfigName="ridge", ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": "ridge", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    sm.update_endpoint(EndpointName="iris", EndpointConfigName="ridge")
    assert sm.describe_endpoint(EndpointName="iris")["EndpointStatus"] == "Updating"
    described = wait_status(sm, "iris")
    assert described["EndpointStatus"] == "InService" and described["EndpointConfigName"] == "ridge"
    answer = runtime.invoke_endpoint(EndpointName="iris", Body=b"0.1,0.2,0.3,0.4", ContentType="text/csv")
    assert not float(json.loads(answer["Body"].read())[0]).is_integer()  # a regression, not a class label
    psutil.wait_procs([psutil.Process(pid) for pid in pids if psutil.pid_exists(pid)], timeout=30)
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in pids)
    pids = [c["pid"] for i in local.instances("iris")["instances"] for c in i["containers"]]

    sm.delete_endpoint(EndpointName="iris")
    assert sm.list_endpoints()["Endpoints"] == []
    psutil.wait_procs([psutil.Process(pid) for pid in pids if psutil.pid_exists(pid)], timeout=30)
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in pids)


def test_an_instance_whose_container_dies_is_replaced(local, iris_url):
    sm, runtime = local.boto("sagemaker"), local.boto("sagemaker-runtime")
    deploy(sm, "phoenix", {"Image": "local", "ModelDataUrl": iris_url}, timeout=120)
    (before,) = local.instances("phoenix")["instances"]
    os.kill(before["containers"][0]["pid"], signal.SIGKILL)  # as an OOM kill would
    deadline = time.monotonic() + 90
    while True:
        instances = local.instances("phoenix")["instances"]
        if instances and instances[0]["instance"] != before["instance"]:
            break
        assert time.monotonic() < deadline, "the dead instance was not replaced"
        time.sleep(0.2)
    assert sm.describe_endpoint(EndpointName="phoenix")["EndpointStatus"] == "InService"
    answer = runtime.invoke_endpoint(EndpointName="phoenix", Body=b"5.1,3.5,1.4,0.2", ContentType="text/csv")
    assert answer["Body"].read().strip() in (b"[0]", b"[1]", b"[2]")
    sm.delete_endpoint(EndpointName="phoenix")


def test_missing_model_data_fails_the_endpoint_with_the_reason(local):
    sm = local.boto("sagemaker")
    sm.create_model(ModelName="lost", PrimaryContainer={"Image": "local", "ModelDataUrl": "s3://single-models/none.tar.gz"},
                    ExecutionRoleArn=ROLE)
    sm.create_endpoint_config(EndpointConfigName="lost", ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": "lost", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    sm.create_endpoint(EndpointName="lost", EndpointConfigName="lost")
    described = wait_status(sm, "lost")
    assert described["EndpointStatus"] == "Failed"
    assert "s3://single-models/none.tar.gz" in described["FailureReason"]
    runtime = local.boto("sagemaker-runtime")
    with pytest.raises(runtime.exceptions.ValidationError, match="not in service"):
        runtime.invoke_endpoint(EndpointName="lost", Body=b"1", ContentType="text/csv")
    sm.delete_endpoint(EndpointName="lost")
