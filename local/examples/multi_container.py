"""Multi-container endpoints: a PyTorch and a TensorFlow model invoked directly, and a serial
pipeline of scikit-learn preprocessing -> XGBoost.

    make local-endpoint &        # in another terminal
    AWS_ENDPOINT_URL=http://127.0.0.1:8080 .venv/bin/python -m local.examples.multi_container

Builds the example models (``models.examples``), uploads them, deploys ``direct`` (Direct mode:
``TargetContainerHostname`` picks the container) and ``pipeline`` (Serial: the scaler's CSV
answer is XGBoost's request), invokes each and prints the answers. Without AWS_ENDPOINT_URL the
same script deploys on AWS (set SAGEMAKER_IMAGE and SAGEMAKER_ROLE_ARN).
"""

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from local.examples.steps import IMAGE, clients, deploy, tear_down, upload
from models.examples import pipeline, pytorch, tensorflow
from models.layout import archive

ROW = [0.5, 1.2, -0.3, 2.0]


def container(bucket: str, model_id: str, hostname: str, **environment: str) -> dict[str, Any]:
    return {"ContainerHostname": hostname, "Image": IMAGE, "Environment": environment,
            "ModelDataUrl": f"s3://{bucket}/{model_id}/model.tar.gz"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bucket", default="local-endpoint-containers")
    parser.add_argument("--keep", action="store_true", help="leave the endpoints running")
    args = parser.parse_args()
    sm, runtime, s3 = clients("sagemaker", "sagemaker-runtime", "s3")
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        ids = pytorch.build(root) + tensorflow.build(root) + pipeline.build(root)
        upload(s3, args.bucket, {f"{i}/model.tar.gz": archive(root, i) for i in ids})

    deploy(sm, "direct", [container(args.bucket, "pytorch-mlp", "torch"),
                          container(args.bucket, "tensorflow-savedmodel", "tensorflow")], mode="Direct")
    body = json.dumps({"instances": [ROW]}).encode()
    for hostname in ("torch", "tensorflow"):
        answer = runtime.invoke_endpoint(EndpointName="direct", TargetContainerHostname=hostname,
                                         ContentType="application/json", Body=body)
        print(f"direct -> {hostname}: {answer['Body'].read().decode()}")

    deploy(sm, "pipeline", [
        container(args.bucket, "pipeline-preprocess", "preprocess", SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT="text/csv"),
        container(args.bucket, "pipeline-xgboost", "xgboost"),
    ], mode="Serial")
    answer = runtime.invoke_endpoint(EndpointName="pipeline", ContentType="text/csv", Accept="application/json",
                                     Body=b"0.5,80,3.1,-6\n-1,140,2.9,-9")
    print(f"pipeline preprocess -> xgboost: {answer['Body'].read().decode()}")
    if not args.keep:
        tear_down(sm, "direct")
        tear_down(sm, "pipeline")


if __name__ == "__main__":
    main()
