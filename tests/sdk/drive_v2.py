"""The SageMaker Python SDK 2.x driving a SageMaker endpoint with its own high-level calls.

Run with the SDK's venv (``tests/sdk/test_sdk_v2.py`` makes it from requirements/sdk-v2.txt):
``python drive_v2.py SPEC.json [FLOW ...]``. Nothing here knows about the local endpoint: boto3
takes ``AWS_ENDPOINT_URL`` (set by the test) for every client the session makes, as a user's
notebook pointed at it would. SPEC names the model archives and source dirs the test built and
the rows to send; each flow prints one JSON line, ``{"flow", "result"}`` or ``{"flow", "error"}``,
which the test checks against predictions it made itself.
"""

import json
import os
import sys
import time
import traceback
import uuid

import boto3
import numpy as np
import sagemaker
from sagemaker import deserializers, serializers
from sagemaker.amazon.common import RecordDeserializer, RecordSerializer
from sagemaker.async_inference import AsyncInferenceConfig, WaiterConfig
from sagemaker.model import Model
from sagemaker.multidatamodel import MultiDataModel
from sagemaker.pipeline import PipelineModel
from sagemaker.predictor import Predictor
from sagemaker.pytorch import PyTorchModel
from sagemaker.sklearn import SKLearnModel
from sagemaker.xgboost import XGBoostModel

ROLE = "arn:aws:iam::123456789012:role/local"
IMAGE = "sagemaker-model-server:latest"
INSTANCE = "ml.m5.large"
POLL = 1  # seconds between DescribeEndpoint calls while deploying (the SDK's default is 30)
# Named, not derived: the SDK derives its default bucket's name from STS GetCallerIdentity, which
# it sends to STS's regional address whatever AWS_ENDPOINT_URL says.
BUCKET = "sagemaker-sdk-v2"


def session() -> sagemaker.Session:
    boto_session = boto3.Session(region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    return sagemaker.Session(
        boto_session=boto_session,
        sagemaker_client=boto_session.client("sagemaker"),
        sagemaker_runtime_client=boto_session.client("sagemaker-runtime"),
        default_bucket=BUCKET,
    )


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, bytes):
        return value.decode()
    return value


class Flows:
    def __init__(self, spec: dict):
        self.spec = spec
        self.session = session()
        self.bucket = self.session.default_bucket()
        self.rows = np.asarray(spec["rows"], dtype=np.float64)

    def upload(self, name: str) -> str:
        """A model archive the test built, uploaded as a user uploads it (the session's own call)."""
        return self.session.upload_data(self.spec["archives"][name], bucket=self.bucket, key_prefix=f"models/{unique(name)}")

    def deploy(self, model, **kwargs):
        """``Model.deploy`` without its own wait, then the session's wait with a short poll."""
        name = unique(kwargs.pop("prefix", "sdk"))
        model.deploy(initial_instance_count=1, instance_type=INSTANCE, endpoint_name=name, wait=False, **kwargs)
        self.session.wait_for_endpoint(name, poll=POLL)
        return name

    def finish(self, predictor) -> dict:
        """delete_endpoint (with its config) and delete_model; the endpoint is gone afterwards."""
        name = predictor.endpoint_name
        predictor.delete_model()
        predictor.delete_endpoint()
        try:
            self.session.sagemaker_client.describe_endpoint(EndpointName=name)
            gone = False
        except self.session.sagemaker_client.exceptions.ClientError as error:
            gone = "Could not find endpoint" in str(error)
        return {"endpoint_deleted": gone}

    # ---------------------------------------------------------------- flows

    def model_serializers(self) -> dict:
        """``Model(image_uri, model_data, role)`` → deploy → predict with every shipped pair → delete_endpoint."""
        model = Model(image_uri=IMAGE, model_data=self.upload("sklearn-iris"), role=ROLE, sagemaker_session=self.session)
        name = self.deploy(model, prefix="model")
        rows = self.rows
        libsvm = "\n".join(" ".join(f"{i}:{v}" for i, v in enumerate(row)) for row in rows)
        import scipy.sparse

        pairs = {
            "json": (serializers.JSONSerializer(), deserializers.JSONDeserializer(), rows.tolist()),
            "csv": (serializers.CSVSerializer(), deserializers.CSVDeserializer(), rows.tolist()),
            "numpy": (serializers.NumpySerializer(), deserializers.NumpyDeserializer(), rows),
            "recordio": (RecordSerializer(), RecordDeserializer(), rows),
            "libsvm": (serializers.LibSVMSerializer(), deserializers.CSVDeserializer(), libsvm),
            "jsonlines": (serializers.JSONLinesSerializer(), deserializers.JSONLinesDeserializer(), rows.tolist()),
            "npz": (serializers.SparseMatrixSerializer(), deserializers.JSONDeserializer(), scipy.sparse.csr_matrix(rows)),
            "pandas": (serializers.CSVSerializer(), deserializers.PandasDeserializer(), rows.tolist()),
        }
        answers = {}
        for kind, (serializer, deserializer, data) in pairs.items():
            predictor = Predictor(name, sagemaker_session=self.session, serializer=serializer, deserializer=deserializer)
            try:
                answers[kind] = {"answer": self.readable(kind, predictor.predict(data))}
            except Exception as error:  # one pair failing must not hide the others
                answers[kind] = {"error": f"{type(error).__name__}: {error}"}
        return {"pairs": answers, **self.finish(Predictor(name, sagemaker_session=self.session))}

    @staticmethod
    def readable(kind: str, answer):
        if kind == "recordio":
            return [list(record.label["score"].float32_tensor.values) for record in answer]
        if kind == "pandas":  # pandas.read_csv takes the CSV's first line as the header
            return [[float(name) for name in answer.columns], *answer.values.tolist()]
        return jsonable(answer)

    def framework(self, kind: str) -> dict:
        """A framework model class with entry_point and source_dir: the SDK uploads (and repacks) the code."""
        classes = {
            "sklearn": (SKLearnModel, "sklearn-iris", {"framework_version": "1.2-1"}),
            "xgboost": (XGBoostModel, "xgboost-binary", {"framework_version": "1.7-1"}),
            "pytorch": (PyTorchModel, "pytorch-mlp", {"framework_version": "2.1", "py_version": "py310"}),
        }
        cls, archive, versions = classes[kind]
        model = cls(model_data=self.upload(archive), role=ROLE, image_uri=IMAGE, entry_point="inference.py",
                    source_dir=self.spec["source_dirs"][kind], sagemaker_session=self.session, **versions)
        name = self.deploy(model, prefix=kind, serializer=serializers.CSVSerializer(),
                           deserializer=deserializers.JSONDeserializer())
        environment = self.session.sagemaker_client.describe_model(ModelName=model.name)["PrimaryContainer"]["Environment"]
        predictor = Predictor(name, sagemaker_session=self.session, serializer=serializers.CSVSerializer(),
                              deserializer=deserializers.JSONDeserializer())
        return {"answer": predictor.predict(self.rows.tolist()), "submit_directory": environment.get("SAGEMAKER_SUBMIT_DIRECTORY"),
                **self.finish(predictor)}

    def sklearn_model(self) -> dict:
        return self.framework("sklearn")

    def xgboost_model(self) -> dict:
        return self.framework("xgboost")

    def pytorch_model(self) -> dict:
        return self.framework("pytorch")

    def multi_data_model(self) -> dict:
        """MultiDataModel: deploy, add_model (the SDK uploads), list_models, predict(target_model=...)."""
        prefix = f"s3://{self.bucket}/{unique('mme')}/"
        mme = MultiDataModel(name=unique("mme"), model_data_prefix=prefix, image_uri=IMAGE, role=ROLE,
                             sagemaker_session=self.session)
        name = self.deploy(mme, prefix="mme", serializer=serializers.CSVSerializer(), deserializer=deserializers.CSVDeserializer())
        mme.add_model(model_data_source=self.spec["archives"]["sklearn-iris"], model_data_path="iris.tar.gz")
        mme.add_model(model_data_source=self.upload("xgboost-binary"), model_data_path="xgboost.tar.gz")
        predictor = Predictor(name, sagemaker_session=self.session, serializer=serializers.CSVSerializer(),
                              deserializer=deserializers.CSVDeserializer())
        answers = {target: predictor.predict(self.rows.tolist(), target_model=target) for target in ("iris.tar.gz", "xgboost.tar.gz")}
        return {"models": sorted(mme.list_models()), "answers": answers, **self.finish(predictor)}

    def async_inference(self) -> dict:
        """AsyncInferenceConfig → predict_async (the SDK uploads the input) → get_result(WaiterConfig)."""
        output = f"s3://{self.bucket}/{unique('async')}"
        model = Model(image_uri=IMAGE, model_data=self.upload("sklearn-iris"), role=ROLE, sagemaker_session=self.session)
        name = self.deploy(model, prefix="async", serializer=serializers.CSVSerializer(), deserializer=deserializers.CSVDeserializer(),
                           async_inference_config=AsyncInferenceConfig(output_path=f"{output}/out", failure_path=f"{output}/failed"))
        predictor = sagemaker.predictor_async.AsyncPredictor(
            Predictor(name, sagemaker_session=self.session, serializer=serializers.CSVSerializer(),
                      deserializer=deserializers.CSVDeserializer()))
        response = predictor.predict_async(data=self.rows.tolist())
        answer = response.get_result(WaiterConfig(max_attempts=60, delay=1))
        waited = predictor.predict(data=self.rows.tolist(), waiter_config=WaiterConfig(max_attempts=60, delay=1))
        return {"output_path": response.output_path, "answer": answer, "predict": waited, **self.finish(predictor)}

    def pipeline_model(self) -> dict:
        """A serial PipelineModel: a scikit-learn scaler answering CSV into an XGBoost model."""
        scaler = Model(image_uri=IMAGE, model_data=self.upload("pipeline-preprocess"), role=ROLE, sagemaker_session=self.session,
                       env={"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv"})
        booster = Model(image_uri=IMAGE, model_data=self.upload("pipeline-xgboost"), role=ROLE, sagemaker_session=self.session)
        pipeline = PipelineModel(models=[scaler, booster], role=ROLE, name=unique("pipeline"), sagemaker_session=self.session)
        name = self.deploy(pipeline, prefix="pipeline")
        predictor = Predictor(name, sagemaker_session=self.session, serializer=serializers.CSVSerializer(),
                              deserializer=deserializers.CSVDeserializer())
        described = self.session.sagemaker_client.describe_model(ModelName=pipeline.name)
        return {"answer": predictor.predict(self.spec["pipeline_rows"]), "containers": len(described["Containers"]),
                **self.finish(predictor)}


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
        print(json.dumps(line, default=jsonable), flush=True)


if __name__ == "__main__":
    main()
