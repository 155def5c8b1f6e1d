"""Asynchronous inference through the local endpoint: S3 in, S3 out, SNS notifications, a queue.

A slow model (each request sleeps half a second) behind an async endpoint that takes two at a
time: every output lands in S3OutputPath, every failure in S3FailurePath, every notification
reaches an SQS queue subscribed to the topics, and the backlog metric rises and falls.
"""

import json
import time

import pytest

from local.examples.steps import deploy, metric_sum, wait_status
from models.layout import archive
from tests.builders import SLOW_CODE, sklearn_model
from tests.local_endpoint.support import local_endpoint

REQUESTS = 20
BUCKET = "async-io"


local = local_endpoint()


@pytest.fixture(scope="module")
def topics(local):
    sns, sqs = local.boto("sns"), local.boto("sqs")
    queue_url = sqs.create_queue(QueueName="notifications")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    arns = {}
    for kind in ("success", "error"):
        arns[kind] = sns.create_topic(Name=f"async-{kind}")["TopicArn"]
        sns.subscribe(TopicArn=arns[kind], Protocol="sqs", Endpoint=queue_arn)
    return arns, queue_url


@pytest.fixture(scope="module")
def endpoint(local, topics, tmp_path_factory):
    arns, _ = topics
    root = tmp_path_factory.mktemp("models")
    sklearn_model(root / "slow" / "model", code=SLOW_CODE)
    s3 = local.boto("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.upload_file(str(archive(root, "slow")), BUCKET, "model/slow.tar.gz")
    deploy(local.boto("sagemaker"), "slow-async", {"Image": "local", "ModelDataUrl": f"s3://{BUCKET}/model/slow.tar.gz"},
           async_config={
               "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 2},
               "OutputConfig": {
                   "S3OutputPath": f"s3://{BUCKET}/output/", "S3FailurePath": f"s3://{BUCKET}/failures/",
                   "NotificationConfig": {"SuccessTopic": arns["success"], "ErrorTopic": arns["error"]},
               },
           }, timeout=120)
    return "slow-async"


def received(sqs, queue_url: str, count: int, timeout: float = 60) -> list[dict]:
    messages = []
    deadline = time.monotonic() + timeout
    while len(messages) < count and time.monotonic() < deadline:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        for message in batch:
            messages.append(json.loads(json.loads(message["Body"])["Message"]))  # the SNS envelope, then ours
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return messages


def test_async_requests_all_land_in_s3_with_notifications(local, endpoint, topics):
    _, queue_url = topics
    s3, runtime, sqs = local.boto("s3"), local.boto("sagemaker-runtime"), local.boto("sqs")
    submitted = {}
    for number in range(REQUESTS):
        key = f"input/{number}.csv"
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"100.5,1,2,3")  # sleeps 0.5 s, then predicts
        answer = runtime.invoke_endpoint_async(EndpointName=endpoint, InputLocation=f"s3://{BUCKET}/{key}",
                                               ContentType="text/csv", InferenceId=f"request-{number}")
        assert answer["ResponseMetadata"]["HTTPStatusCode"] == 202
        assert answer["OutputLocation"] == f"s3://{BUCKET}/output/request-{number}.out"
        assert answer["FailureLocation"] == f"s3://{BUCKET}/failures/request-{number}-error.out"
        submitted[answer["InferenceId"]] = answer["OutputLocation"]

    depths = [metric_sum(local.metrics(), "sagemaker_approximate_backlog_size", endpoint=endpoint)]
    deadline = time.monotonic() + 60
    while depths[-1] > 0 and time.monotonic() < deadline:
        time.sleep(0.25)
        depths.append(metric_sum(local.metrics(), "sagemaker_approximate_backlog_size", endpoint=endpoint))
    print(f"backlog seen: {depths}")
    assert max(depths) >= REQUESTS / 2, depths  # it rose: two at a time cannot keep up with 20 at once
    assert depths[-1] == 0, depths  # and fell to nothing
    assert len(depths) >= 8  # ~20 x 0.5 s / 2 in flight: it took seconds, not an instant

    for location in submitted.values():
        body = s3.get_object(Bucket=BUCKET, Key=location.split(f"s3://{BUCKET}/", 1)[1])["Body"].read()
        assert body.strip() in (b"[0]", b"[1]", b"[2]")
    notices = received(sqs, queue_url, REQUESTS)
    assert sorted(n["inferenceId"] for n in notices) == sorted(submitted)
    assert all(n["invocationStatus"] == "Completed" and n["eventSource"] == "aws:sagemaker" for n in notices)
    assert {n["responseParameters"]["outputLocation"] for n in notices} == set(submitted.values())


def test_async_failures_go_to_the_failure_path_and_error_topic(local, endpoint, topics):
    _, queue_url = topics
    s3, runtime, sqs = local.boto("s3"), local.boto("sagemaker-runtime"), local.boto("sqs")
    s3.put_object(Bucket=BUCKET, Key="input/bad.csv", Body=b"not,a,number,here")
    bad = runtime.invoke_endpoint_async(EndpointName=endpoint, InputLocation=f"s3://{BUCKET}/input/bad.csv",
                                        ContentType="text/csv")
    missing = runtime.invoke_endpoint_async(EndpointName=endpoint, InputLocation=f"s3://{BUCKET}/input/none.csv",
                                            ContentType="text/csv")
    notices = {n["inferenceId"]: n for n in received(sqs, queue_url, 2)}
    assert set(notices) == {bad["InferenceId"], missing["InferenceId"]}
    assert all(n["invocationStatus"] == "Failed" for n in notices.values())
    assert "ModelError" in notices[bad["InferenceId"]]["failureReason"]
    assert "none.csv" in notices[missing["InferenceId"]]["failureReason"]
    failure = s3.get_object(Bucket=BUCKET, Key=f"failures/{bad['InferenceId']}-error.out")["Body"].read().decode()
    assert "Received client error (400)" in failure
    with pytest.raises(runtime.exceptions.ValidationError, match="InputLocation"):
        runtime.invoke_endpoint_async(EndpointName=endpoint, InputLocation="https://example.com/x",
                                      ContentType="text/csv")
    with pytest.raises(runtime.exceptions.ValidationError, match="asynchronous endpoint"):
        runtime.invoke_endpoint(EndpointName=endpoint, Body=b"1,2,3,4", ContentType="text/csv")


def test_requests_in_flight_on_a_removed_instance_are_taken_by_another(local, endpoint, topics):
    _, queue_url = topics
    s3, runtime, sqs, sm = (local.boto(s) for s in ("s3", "sagemaker-runtime", "sqs", "sagemaker"))
    sm.update_endpoint_weights_and_capacities(EndpointName=endpoint, DesiredWeightsAndCapacities=[
        {"VariantName": "AllTraffic", "DesiredInstanceCount": 2}])
    assert wait_status(sm, endpoint, timeout=120)["ProductionVariants"][0]["CurrentInstanceCount"] == 2
    s3.put_object(Bucket=BUCKET, Key="input/second.csv", Body=b"101,1,2,3")  # one second each
    ids = [runtime.invoke_endpoint_async(EndpointName=endpoint, InputLocation=f"s3://{BUCKET}/input/second.csv",
                                         ContentType="text/csv")["InferenceId"] for _ in range(8)]
    time.sleep(0.5)  # both instances busy, two requests each
    sm.update_endpoint_weights_and_capacities(EndpointName=endpoint, DesiredWeightsAndCapacities=[
        {"VariantName": "AllTraffic", "DesiredInstanceCount": 1}])
    notices = received(sqs, queue_url, len(ids))
    assert sorted(n["inferenceId"] for n in notices) == sorted(ids)
    assert all(n["invocationStatus"] == "Completed" for n in notices)
    assert wait_status(sm, endpoint, timeout=60)["ProductionVariants"][0]["CurrentInstanceCount"] == 1
