"""SageMaker Python SDK 3.x (requirements/sdk-v3.txt) against ``python -m local serve``, unchanged.

3.x has no ``Model``/``Predictor``/``MultiDataModel`` of 2.x: it is driven through sagemaker-core's
resources and ``ModelBuilder``. One local endpoint and one driver run for the module; each test
checks one flow's JSON line against the model's own predictions.
"""

import pytest

from harness.local_endpoint import LocalEndpointProcess
from tests.sdk import support

# The first run makes the SDK's venv (minutes: see support.py); later runs take it from the cache.
pytestmark = pytest.mark.timeout(1800)

FLOWS = ["core-resources", "core-async", "model-builder"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("sdk-v3-models")
    return root, support.build_models(root)


@pytest.fixture(scope="module")
def driven(models, tmp_path_factory):
    python = support.python_of(support.sdk_venv("v3"))
    _, archives = models
    local = LocalEndpointProcess(tmp_path_factory.mktemp("local-endpoint"))
    try:
        spec = {"archives": archives, "rows": support.rows().tolist()}
        yield support.drive("drive_v3", python, local, spec, FLOWS, tmp_path_factory.mktemp("sdk-v3"))
    finally:
        _, alive = local.stop(grace=60)
        assert not alive, f"processes left behind: {[p.pid for p in alive]}"


def test_core_resources_create_invoke_delete(driven, models):
    result = support.result(driven, "core-resources")
    labels = support.iris_labels(models[0])
    assert support.flat(result["json"]) == labels
    assert support.flat(result["csv"]) == labels
    assert result["content_types"] == ["application/json", "text/csv"]
    assert result["endpoint_deleted"] and result["models_deleted"] == 1


def test_core_invoke_async_output_in_s3(driven, models):
    result = support.result(driven, "core-async")
    assert result["output_location"].endswith(".out")
    assert support.flat(result["answer"]) == support.iris_labels(models[0])
    assert result["endpoint_deleted"]


def test_model_builder_image_uri_sagemaker_endpoint_mode(driven, models):
    result = support.result(driven, "model-builder")
    assert support.flat(result["csv"]) == support.iris_labels(models[0])
    assert result["endpoint_deleted"] and result["models_deleted"] == 1
