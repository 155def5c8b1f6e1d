"""An asynchronous endpoint with a slow model: inputs in S3, outputs in S3, SNS notifications.

    make local-endpoint &        # in another terminal
    AWS_ENDPOINT_URL=http://127.0.0.1:8080 .venv/bin/python -m local.examples.async_inference --requests 100

Deploys a scikit-learn model whose ``predict_fn`` sleeps ``--seconds`` per request behind an
endpoint with AsyncInferenceConfig, subscribes an SQS queue to its success and error topics,
puts ``--requests`` inputs in S3 and invokes each with InvokeEndpointAsync; then waits for every
notification, checks that every output is in S3, and prints the queue depth
(ApproximateBacklogSize) as it rose and fell. Without AWS_ENDPOINT_URL the same script runs on
AWS (set SAGEMAKER_IMAGE and SAGEMAKER_ROLE_ARN; the queue then needs a policy letting SNS send).
"""

import argparse
import json
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import joblib
from sklearn.linear_model import LogisticRegression

from local.examples.steps import IMAGE, clients, deploy, local_metrics, metric_sum, tear_down, upload
from models import data
from models.layout import archive, model_dir

SLOW_PREDICT = """
import os
import time

def predict_fn(data, model):
    time.sleep(float(os.environ.get("SECONDS_PER_REQUEST", "0.5")))
    return model.predict(data)
"""


def build(root: Path) -> Path:
    target = model_dir(root, "slow")
    X, y = data.classification(seed=3)
    joblib.dump(LogisticRegression(max_iter=500).fit(X, y), target / "model.joblib")
    (target / "code").mkdir()
    (target / "code" / "inference.py").write_text(textwrap.dedent(SLOW_PREDICT))
    return archive(root, "slow")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=0.5, help="time each request takes")
    parser.add_argument("--concurrency", type=int, default=4, help="MaxConcurrentInvocationsPerInstance")
    parser.add_argument("--bucket", default="local-endpoint-async")
    parser.add_argument("--keep", action="store_true", help="leave the endpoint running")
    args = parser.parse_args()
    sm, runtime, s3, sns, sqs = clients("sagemaker", "sagemaker-runtime", "s3", "sns", "sqs")
    with tempfile.TemporaryDirectory() as scratch:
        upload(s3, args.bucket, {"model/slow.tar.gz": build(Path(scratch))})

    queue_url = sqs.create_queue(QueueName="async-notifications")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    topics = {kind: sns.create_topic(Name=f"async-{kind}")["TopicArn"] for kind in ("success", "error")}
    for arn in topics.values():
        sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue_arn)
    deploy(sm, "slow-async", {
        "Image": IMAGE, "ModelDataUrl": f"s3://{args.bucket}/model/slow.tar.gz",
        "Environment": {"SECONDS_PER_REQUEST": str(args.seconds)},
    }, async_config={
        "ClientConfig": {"MaxConcurrentInvocationsPerInstance": args.concurrency},
        "OutputConfig": {"S3OutputPath": f"s3://{args.bucket}/output/", "S3FailurePath": f"s3://{args.bucket}/failures/",
                         "NotificationConfig": {"SuccessTopic": topics["success"], "ErrorTopic": topics["error"]}},
    })

    outputs = {}
    for number in range(args.requests):
        s3.put_object(Bucket=args.bucket, Key=f"input/{number}.csv", Body=b"5.1,3.5,1.4,0.2")
        answer = runtime.invoke_endpoint_async(EndpointName="slow-async", ContentType="text/csv",
                                               InputLocation=f"s3://{args.bucket}/input/{number}.csv")
        outputs[answer["InferenceId"]] = answer["OutputLocation"]
    print(f"{len(outputs)} requests queued")

    depths: list[int] = []
    notices: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 60 + args.requests * args.seconds
    while len(notices) < len(outputs) and time.monotonic() < deadline:
        text = local_metrics()
        if text is not None:
            depths.append(int(metric_sum(text, "sagemaker_approximate_backlog_size", endpoint="slow-async")))
        for message in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                           WaitTimeSeconds=1).get("Messages", []):
            notice = json.loads(json.loads(message["Body"])["Message"])
            notices[notice["inferenceId"]] = notice
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    text = local_metrics()
    if text is not None:  # after the last notification: the queue is empty
        depths.append(int(metric_sum(text, "sagemaker_approximate_backlog_size", endpoint="slow-async")))
    completed = sum(n["invocationStatus"] == "Completed" for n in notices.values())
    found = sum(
        s3.get_object(Bucket=args.bucket, Key=location.split("/", 3)[3])["ContentLength"] > 0
        for location in outputs.values()
    )
    print(f"notifications: {len(notices)}/{len(outputs)} ({completed} completed); outputs in S3: {found}/{len(outputs)}")
    if depths:
        peak = max(depths)
        print(f"queue depth: peak {peak}, last {depths[-1]}; seen {depths[:: max(1, len(depths) // 20)]}")
    if not args.keep:
        tear_down(sm, "slow-async")


if __name__ == "__main__":
    main()
