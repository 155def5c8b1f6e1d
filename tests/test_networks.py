"""The networks of ``models/networks.py`` (issue 22) served as the benchmark serves them: NPY in and out.

The BERT-tiny-sized encoder is written as TorchScript, ONNX and a TF SavedModel; one multi-model
server holds all three. The TorchScript and ONNX files come from the same PyTorch weights, so
their answers to the same token ids must agree with each other and with the module itself; the
Keras one has weights of its own, so only its shape and dtype are checked. (The ResNet-18 is
left to ``benchmarks/networks.py``: 45 MB in each form and seconds per batch on these cores.)
"""

import io

import numpy as np
import pytest
import torch

from models import networks

NPY = "application/x-npy"


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def server(tmp_path_factory, start_module_server):
    root = tmp_path_factory.mktemp("networks")
    built = networks.build(root, ("encoder",))
    server = start_module_server(SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=str(root))
    for name in built:
        server.load(name, root / name / "model")
    return server


def answer(server, name: str, ids: np.ndarray) -> np.ndarray:
    response = server.client.post(f"/models/{name}/invoke", content=npy(ids), headers={"Content-Type": NPY, "Accept": NPY})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(NPY)
    return np.load(io.BytesIO(response.content))


def test_torchscript_and_onnx_answer_what_the_module_computes(server):
    ids = networks.request("encoder", rows=3, seed=4)
    with torch.no_grad():
        expected = networks.torch_network("encoder")(torch.from_numpy(ids)).numpy()
    for name in ("encoder-pytorch", "encoder-onnx"):
        got = answer(server, name, ids)
        assert got.shape == (3, networks.CLASSES)
        np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4, err_msg=name)


def test_savedmodel_answers_one_row_of_logits_per_sequence(server):
    got = answer(server, "encoder-tensorflow", networks.request("encoder", rows=2, seed=5))
    assert got.shape == (2, networks.CLASSES) and got.dtype == np.float32
    assert np.isfinite(got).all() and not np.allclose(got[0], got[1])  # two different sequences, two answers
