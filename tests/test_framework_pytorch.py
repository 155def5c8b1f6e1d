"""PyTorch over real HTTP (multi-model mode): TorchScript loads without user code, answers what
torch answers in this process for every content type in and out, and refuses bad input and
non-TorchScript files with a 4xx and a message."""

import importlib.util
import io
import json
import shutil

import numpy as np
import pytest
import torch

from handlers.codecs.media import CSV, JSON, JSONLINES, NPY, NPZ
from handlers.frameworks import pytorch as handler
from models import data
from tests.builders import npy, npz

JSONL = JSONLINES


@pytest.fixture(scope="module")
def root(examples):
    return examples("pytorch")


@pytest.fixture(scope="module")
def server(start_module_server, root):
    server = start_module_server(SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=root)
    server.load("mlp", root / "pytorch-mlp" / "model")
    return server


@pytest.fixture(scope="module")
def rows():
    """Rows from the training distribution: the classes predicted differ."""
    return data.classification(seed=5)[0][:6]


@pytest.fixture(scope="module")
def expected(root, rows):
    model = torch.jit.load(str(root / "pytorch-mlp" / "model" / "model.pt"), map_location="cpu").eval()
    with torch.inference_mode():
        answer = model(torch.as_tensor(rows, dtype=torch.float32)).numpy()
    assert answer.shape == (6, 3) and len(set(answer.argmax(axis=1))) > 1
    return answer


def invoke(server, body: bytes, content_type: str, accept: str | None = None, name: str = "mlp"):
    headers = {"Content-Type": content_type} | ({"Accept": accept} if accept else {})
    return server.client.post(f"/models/{name}/invoke", content=body, headers=headers)


def test_torchscript_loads_without_user_code(server):
    described = server.client.get("/models/mlp")
    assert described.status_code == 200
    assert described.json()["modelName"] == "mlp"


@pytest.mark.parametrize("content_type", [JSON, CSV, NPY, NPZ, JSONL])
def test_every_content_type_in_matches_torch(server, rows, expected, content_type):
    body = {
        JSON: lambda: json.dumps(rows.tolist()).encode(),
        CSV: lambda: "\n".join(",".join(repr(float(v)) for v in row) for row in rows).encode(),
        NPY: lambda: npy(rows.astype(np.float32)),
        NPZ: lambda: npz(x=rows),
        JSONL: lambda: b"".join(json.dumps(row).encode() + b"\n" for row in rows.tolist()),
    }[content_type]()
    response = invoke(server, body, content_type)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(JSON)
    np.testing.assert_allclose(np.array(response.json()), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("accept", [JSON, CSV, NPY, JSONL])
def test_every_accept_out_matches_torch(server, rows, expected, accept):
    response = invoke(server, npy(rows), NPY, accept)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(accept)
    if accept == JSON:
        answer = np.array(response.json())
    elif accept == CSV:
        answer = np.loadtxt(io.StringIO(response.text), delimiter=",", ndmin=2)
    elif accept == NPY:
        answer = np.load(io.BytesIO(response.content), allow_pickle=False)
        assert answer.dtype == np.float32
    else:
        answer = np.array([json.loads(line) for line in response.text.splitlines()])
    np.testing.assert_allclose(answer, expected, rtol=1e-5, atol=1e-6)


def test_one_bare_row(server, rows, expected):
    response = invoke(server, json.dumps(rows[0].tolist()).encode(), JSON)
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(np.array(response.json()), expected[0], rtol=1e-5, atol=1e-6)


def test_wrong_shape_is_400_with_a_message(server):
    response = invoke(server, b"[[1, 2, 3]]", JSON)
    assert response.status_code == 400
    error = response.json()
    assert error["code"] == 400
    assert "shape" in error["message"] and "cannot be multiplied" in error["message"]
    assert "Traceback" not in error["message"] and "\n" not in error["message"]


def test_text_is_400(server):
    response = invoke(server, b'[["a", "b", "c", "d"]]', JSON)
    assert response.status_code == 400
    assert "numbers" in response.json()["message"]


def test_unknown_content_type_is_415(server):
    response = invoke(server, b"1,2,3,4", "application/x-unknown")
    assert response.status_code == 415


def test_state_dict_without_model_fn_is_400(server, root):
    directory = root / "pytorch-state-dict-only" / "model"
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(root / "pytorch-eager" / "model" / "model.pth", directory / "model.pth")
    response = server.client.post("/models", json={"model_name": "bare", "url": str(directory)})
    assert response.status_code == 400, response.text
    message = response.json()["message"]
    assert "not TorchScript" in message and "model_fn" in message and "code/inference.py" in message
    assert server.client.get("/models/bare").status_code == 404


def test_eager_model_through_model_fn(server, root, rows):
    directory = root / "pytorch-eager" / "model"
    server.load("eager", directory)
    spec = importlib.util.spec_from_file_location("eager_inference", directory / "code" / "inference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.model_fn(str(directory))
    with torch.inference_mode():
        expected = model(torch.as_tensor(rows, dtype=torch.float32)).numpy()
    response = invoke(server, json.dumps(rows.tolist()).encode(), JSON, name="eager")
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(np.array(response.json()), expected, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ in process: find and setup


def test_find_prefers_model_pt_and_refuses_ambiguity(tmp_path):
    assert handler.find(tmp_path) is None
    (tmp_path / "weights.pth").write_bytes(b"x")
    assert handler.find(tmp_path) == tmp_path / "weights.pth"
    (tmp_path / "other.pt").write_bytes(b"x")
    with pytest.raises(handler.ModelLoadError, match="several"):
        handler.find(tmp_path)
    (tmp_path / "model.pt").write_bytes(b"x")
    assert handler.find(tmp_path) == tmp_path / "model.pt"


def test_single_pth_torchscript_loads(tmp_path, root, rows, expected):
    shutil.copy(root / "pytorch-mlp" / "model" / "model.pt", tmp_path / "net.pth")
    model = handler.load(handler.find(tmp_path))
    np.testing.assert_allclose(handler.predict(model, rows), expected, rtol=1e-6)


def test_setup_sets_threads_and_may_run_twice():
    handler.setup(1)
    handler.setup(1)  # the inter-op pool can only be sized once: the second call must not raise
    assert torch.get_num_threads() == 1
