"""SageMaker Python SDK 2.x (requirements/sdk-v2.txt) against ``python -m local serve``, unchanged.

One local endpoint and one driver run for the module (the SDK's import and session are paid
once); each test checks one flow's JSON line against predictions made here with the same models.
"""

import textwrap

import numpy as np
import pytest
import torch
import xgboost

from harness.local_endpoint import LocalEndpointProcess
from tests.sdk import support

# The first run makes the SDK's venv (minutes: see support.py); later runs take it from the cache.
pytestmark = pytest.mark.timeout(1800)

FLOWS = ["model-serializers", "sklearn-model", "xgboost-model", "pytorch-model", "multi-data-model", "async-inference",
         "pipeline-model"]

# Each source_dir holds inference.py and a helper module it imports: the answer's "script" proves
# both came through the SDK's sourcedir.tar.gz (or its repacked model.tar.gz).
HELPER = 'TAG = "{tag}"\n'
CODE = {
    "sklearn": """
        import os

        import joblib
        from helper import TAG

        def model_fn(model_dir):
            return joblib.load(os.path.join(model_dir, "model.joblib"))

        def predict_fn(data, model):
            return {"script": TAG, "predictions": model.predict(data).tolist()}
        """,
    "xgboost": """
        import os

        import xgboost
        from helper import TAG

        def model_fn(model_dir):
            booster = xgboost.Booster()
            booster.load_model(os.path.join(model_dir, "xgboost-model"))
            return booster

        def predict_fn(data, model):
            return {"script": TAG, "predictions": model.predict(xgboost.DMatrix(data)).tolist()}
        """,
    "pytorch": """
        import os

        import torch
        from helper import TAG

        def model_fn(model_dir):
            return torch.jit.load(os.path.join(model_dir, "model.pt")).eval()

        def predict_fn(data, model):
            with torch.no_grad():
                probabilities = model(torch.as_tensor(data, dtype=torch.float32))
            return {"script": TAG, "predictions": probabilities.argmax(dim=1).tolist()}
        """,
}


def source_dirs(root):
    made = {}
    for kind, code in CODE.items():
        directory = root / f"src-{kind}"
        directory.mkdir()
        (directory / "inference.py").write_text(textwrap.dedent(code))
        (directory / "helper.py").write_text(HELPER.format(tag=f"sdk-{kind}"))
        made[kind] = str(directory)
    return made


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("sdk-v2-models")
    return root, support.build_models(root)


@pytest.fixture(scope="module")
def driven(models, tmp_path_factory):
    python = support.python_of(support.sdk_venv("v2"))
    root, archives = models
    local = LocalEndpointProcess(tmp_path_factory.mktemp("local-endpoint"))
    try:
        spec = {"archives": archives, "source_dirs": source_dirs(root), "rows": support.rows().tolist(),
                "pipeline_rows": support.pipeline_rows().tolist()}
        yield support.drive("drive_v2", python, local, spec, FLOWS, tmp_path_factory.mktemp("sdk-v2"))
    finally:
        _, alive = local.stop(grace=60)
        assert not alive, f"processes left behind: {[p.pid for p in alive]}"


def expected(root, name: str) -> list[float]:
    model = root / name / "model"
    X = support.rows()
    if name == "sklearn-iris":
        return support.iris_labels(root)
    if name == "xgboost-binary":
        booster = xgboost.Booster()
        booster.load_model(str(model / "xgboost-model"))
        return booster.predict(xgboost.DMatrix(X)).tolist()
    if name == "pytorch-mlp":
        with torch.no_grad():
            return [float(v) for v in torch.jit.load(str(model / "model.pt"))(torch.as_tensor(X, dtype=torch.float32)).argmax(1)]
    raise KeyError(name)


def test_model_deploy_predict_with_every_serializer_pair_then_delete(driven, models):
    result = support.result(driven, "model-serializers")
    labels = expected(models[0], "sklearn-iris")
    for kind, outcome in result["pairs"].items():
        assert "error" not in outcome, f"{kind}: {outcome['error']}"
        assert support.flat(outcome["answer"]) == labels, kind
    assert set(result["pairs"]) == {"json", "csv", "numpy", "recordio", "libsvm", "jsonlines", "npz", "pandas"}
    assert result["endpoint_deleted"]




def test_sklearn_model_with_entry_point_and_source_dir(driven, models):
    check_framework(driven, models, "sklearn", "sklearn-iris")


def test_xgboost_model_with_entry_point_and_source_dir(driven, models):
    check_framework(driven, models, "xgboost", "xgboost-binary")


def test_pytorch_model_with_entry_point_and_source_dir(driven, models):
    check_framework(driven, models, "pytorch", "pytorch-mlp")


def check_framework(driven, models, kind: str, name: str, known: tuple[str, ...] = ()):
    result = support.result(driven, f"{kind}-model", known)
    assert result["answer"]["script"] == f"sdk-{kind}"
    assert np.allclose(result["answer"]["predictions"], expected(models[0], name), atol=1e-6)
    assert result["submit_directory"]
    assert result["endpoint_deleted"]


def test_multi_data_model_add_model_and_target_model(driven, models):
    result = support.result(driven, "multi-data-model")
    assert result["models"] == ["iris.tar.gz", "xgboost.tar.gz"]
    assert support.flat(result["answers"]["iris.tar.gz"]) == expected(models[0], "sklearn-iris")
    assert np.allclose(support.flat(result["answers"]["xgboost.tar.gz"]), expected(models[0], "xgboost-binary"), atol=1e-6)
    assert result["endpoint_deleted"]


def test_async_inference_predict_async_and_get_result(driven, models):
    result = support.result(driven, "async-inference")
    labels = expected(models[0], "sklearn-iris")
    assert support.flat(result["answer"]) == labels
    assert support.flat(result["predict"]) == labels
    assert result["endpoint_deleted"]


def test_serial_pipeline_model(driven, models):
    root = models[0]
    import joblib

    scaler = joblib.load(root / "pipeline-preprocess" / "model" / "model.joblib")
    booster = xgboost.Booster()
    booster.load_model(str(root / "pipeline-xgboost" / "model" / "xgboost-model.json"))
    want = booster.predict(xgboost.DMatrix(scaler.transform(support.pipeline_rows())))
    result = support.result(driven, "pipeline-model")
    assert result["containers"] == 2
    assert np.allclose(support.flat(result["answer"]), want, atol=1e-5)
    assert result["endpoint_deleted"]
