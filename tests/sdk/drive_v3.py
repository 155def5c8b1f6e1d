"""The SageMaker Python SDK 3.x driving a SageMaker endpoint with its own high-level calls.

Run with the SDK's venv (``tests/sdk/test_sdk_v3.py`` makes it from requirements/sdk-v3.txt):
``python drive_v3.py SPEC.json [FLOW ...]``. As ``drive_v2.py``: boto3 takes ``AWS_ENDPOINT_URL``
(set by the test) for every client, each flow prints one JSON line, ``{"flow", "result"}`` or
``{"flow", "error"}``. 3.x has no ``Model``/``Predictor``/``MultiDataModel`` of 2.x: its resources
are sagemaker-core's (``Model.create``, ``EndpointConfig.create``, ``Endpoint.create`` /
``invoke`` / ``invoke_async``) and ``ModelBuilder``.
"""

import json
import os
import sys
import time
import traceback
import uuid

import boto3
from sagemaker.core.helper.session_helper import Session
from sagemaker.core.resources import Endpoint, EndpointConfig, Model
from sagemaker.core.shapes import (
    AsyncInferenceClientConfig,
    AsyncInferenceConfig,
    AsyncInferenceOutputConfig,
    ContainerDefinition,
    ProductionVariant,
)
from sagemaker.serve.mode.function_pointers import Mode
from sagemaker.serve.model_builder import ModelBuilder

ROLE = "arn:aws:iam::123456789012:role/local"
IMAGE = "sagemaker-model-server:latest"
INSTANCE = "ml.m5.large"
POLL = 1  # seconds between DescribeEndpoint calls while deploying
BUCKET = "sagemaker-sdk-v3"  # named: the SDK derives its default from STS, which ignores AWS_ENDPOINT_URL


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Flows:
    def __init__(self, spec: dict):
        self.spec = spec
        self.boto = boto3.Session(region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
        self.session = Session(boto_session=self.boto, sagemaker_client=self.boto.client("sagemaker"),
                               sagemaker_runtime_client=self.boto.client("sagemaker-runtime"), default_bucket=BUCKET)
        self.bucket = self.session.default_bucket()
        self.csv = "\n".join(",".join(str(v) for v in row) for row in spec["rows"])

    def upload(self, name: str) -> str:
        return self.session.upload_data(self.spec["archives"][name], bucket=self.bucket, key_prefix=f"models/{unique(name)}")

    def endpoint(self, model_url: str, prefix: str, async_config=None) -> Endpoint:
        """Model.create → EndpointConfig.create → Endpoint.create, then wait_for_status("InService")."""
        name = unique(prefix)
        Model.create(model_name=name, execution_role_arn=ROLE, session=self.boto,
                     primary_container=ContainerDefinition(image=IMAGE, model_data_url=model_url))
        EndpointConfig.create(endpoint_config_name=name, session=self.boto, async_inference_config=async_config,
                              production_variants=[ProductionVariant(variant_name="AllTraffic", model_name=name,
                                                                     initial_instance_count=1, instance_type=INSTANCE)])
        endpoint = Endpoint.create(endpoint_name=name, endpoint_config_name=name, session=self.boto)
        endpoint.wait_for_status("InService", poll=POLL, timeout=300)
        return endpoint

    def delete(self, endpoint: Endpoint) -> dict:
        """Endpoint.delete (waited for), then its config and models; the endpoint is gone afterwards."""
        name = endpoint.endpoint_name
        config = EndpointConfig.get(endpoint_config_name=endpoint.endpoint_config_name, session=self.boto)
        models = [variant.model_name for variant in config.production_variants]
        endpoint.delete()
        endpoint.wait_for_delete(poll=POLL, timeout=120)
        config.delete()
        for model in models:
            Model.get(model_name=model, session=self.boto).delete()
        return {"endpoint_deleted": name not in [e.endpoint_name for e in Endpoint.get_all(session=self.boto)],
                "models_deleted": len(models)}

    @staticmethod
    def body(answer) -> str:
        body = answer.body
        return (body.read() if hasattr(body, "read") else body).decode() if not isinstance(body, str) else body

    # ---------------------------------------------------------------- flows

    def core_resources(self) -> dict:
        endpoint = self.endpoint(self.upload("sklearn-iris"), "core")
        as_json = endpoint.invoke(body=json.dumps(self.spec["rows"]), content_type="application/json", accept="application/json")
        as_csv = endpoint.invoke(body=self.csv, content_type="text/csv", accept="text/csv")
        return {"json": json.loads(self.body(as_json)), "csv": self.body(as_csv).split(),
                "content_types": [as_json.content_type, as_csv.content_type], **self.delete(endpoint)}

    def core_async(self) -> dict:
        """invoke_async on an endpoint with AsyncInferenceConfig: input uploaded with the session, output read back."""
        out = f"s3://{self.bucket}/{unique('async')}"
        endpoint = self.endpoint(self.upload("sklearn-iris"), "core-async", AsyncInferenceConfig(
            client_config=AsyncInferenceClientConfig(max_concurrent_invocations_per_instance=2),
            output_config=AsyncInferenceOutputConfig(s3_output_path=f"{out}/out", s3_failure_path=f"{out}/failed")))
        key = f"{unique('input')}/rows.csv"
        location = self.session.upload_string_as_file_body(self.csv, bucket=self.bucket, key=key)
        queued = endpoint.invoke_async(input_location=location, content_type="text/csv", accept="text/csv")
        deadline = time.monotonic() + 120
        bucket, _, output_key = queued.output_location.removeprefix("s3://").partition("/")
        while True:
            try:
                answer = self.session.read_s3_file(bucket, output_key)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        return {"output_location": queued.output_location, "answer": answer.split(), **self.delete(endpoint)}

    def model_builder(self) -> dict:
        """ModelBuilder with an image URI and the model's S3 URL, mode SAGEMAKER_ENDPOINT: build → deploy → invoke."""
        builder = ModelBuilder(image_uri=IMAGE, s3_model_data_url=self.upload("sklearn-iris"), role_arn=ROLE,
                               sagemaker_session=self.session, mode=Mode.SAGEMAKER_ENDPOINT, instance_type=INSTANCE)
        builder.build()
        # wait=False and the resource's own wait: deploy's wait polls every 30 s, its first poll after 30 s
        endpoint = builder.deploy(endpoint_name=unique("builder"), initial_instance_count=1, wait=False)
        endpoint.wait_for_status("InService", poll=POLL, timeout=300)
        answer = endpoint.invoke(body=self.csv, content_type="text/csv", accept="text/csv")
        return {"csv": self.body(answer).split(), **self.delete(endpoint)}


def main() -> None:
    with open(sys.argv[1]) as spec_file:
        spec = json.load(spec_file)
    flows = Flows(spec)
    for flow in sys.argv[2:]:
        started = time.monotonic()
        try:
            line = {"flow": flow, "result": getattr(flows, flow.replace("-", "_"))()}
        except Exception as error:
            line = {"flow": flow, "error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()}
        line["seconds"] = round(time.monotonic() - started, 1)
        print("\n" + json.dumps(line, default=str), flush=True)


if __name__ == "__main__":
    main()
