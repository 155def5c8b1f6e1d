"""ONNX over real HTTP (multi-model mode): ``model.onnx`` loads without user code and answers what
ONNX Runtime answers in this process, for every content type in and out; several outputs and
several inputs (a JSON object or NPZ keyed by input name); bad input is a 4xx with a message."""

import io
import json

import numpy as np
import onnxruntime
import pytest

from handlers.codecs.media import CSV, JSON, JSONLINES, NPY, NPZ
from handlers.frameworks import onnx as handler
from models import data
from tests.builders import npy, npz

JSONL = JSONLINES


@pytest.fixture(scope="module")
def root(examples):
    return examples("onnx")


@pytest.fixture(scope="module")
def server(start_module_server, root):
    server = start_module_server(SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=root)
    server.load("classifier", root / "onnx-classifier" / "model")
    server.load("two", root / "onnx-two-inputs" / "model")
    return server


def session(root, model_id):
    return onnxruntime.InferenceSession(str(root / model_id / "model" / "model.onnx"), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def rows():
    return data.classification(seed=7)[0][:6]


@pytest.fixture(scope="module")
def expected(root, rows):
    label, probabilities = session(root, "onnx-classifier").run(["label", "probabilities"], {"input": rows.astype(np.float32)})
    assert len(set(label.tolist())) > 1
    return {"label": label, "probabilities": probabilities}


def invoke(server, name, body: bytes, content_type: str, accept: str | None = None):
    headers = {"Content-Type": content_type} | ({"Accept": accept} if accept else {})
    return server.client.post(f"/models/{name}/invoke", content=body, headers=headers)


@pytest.mark.parametrize("content_type", [JSON, CSV, NPY, NPZ, JSONL])
def test_every_content_type_in_matches_onnxruntime(server, rows, expected, content_type):
    body = {
        JSON: lambda: json.dumps({"instances": rows.tolist()}).encode(),
        CSV: lambda: "\n".join(",".join(repr(float(v)) for v in row) for row in rows).encode(),
        NPY: lambda: npy(rows),  # float64: cast to the model's float32
        NPZ: lambda: npz(input=rows),
        JSONL: lambda: b"".join(json.dumps(row).encode() + b"\n" for row in rows.tolist()),
    }[content_type]()
    response = invoke(server, "classifier", body, content_type)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert list(answer) == ["label", "probabilities"]  # every output, in the model's order
    assert answer["label"] == expected["label"].tolist()
    np.testing.assert_allclose(np.array(answer["probabilities"]), expected["probabilities"], rtol=1e-5, atol=1e-6)


def test_csv_and_npy_out_answer_the_first_output(server, rows, expected):
    response = invoke(server, "classifier", npy(rows), NPY, CSV)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(CSV)
    assert np.loadtxt(io.StringIO(response.text), dtype=np.int64).tolist() == expected["label"].tolist()
    response = invoke(server, "classifier", npy(rows), NPY, NPY)
    assert response.status_code == 200, response.text
    answer = np.load(io.BytesIO(response.content), allow_pickle=False)
    assert answer.dtype == np.int64 and answer.tolist() == expected["label"].tolist()


def test_jsonlines_out_is_one_record_per_row(server, rows, expected):
    response = invoke(server, "classifier", npy(rows), NPY, JSONL)
    assert response.status_code == 200, response.text
    records = [json.loads(line) for line in response.text.splitlines()]
    assert [r["label"] for r in records] == expected["label"].tolist()
    np.testing.assert_allclose([r["probabilities"] for r in records], expected["probabilities"], rtol=1e-5, atol=1e-6)


def test_one_output_in_every_accept(server, root):
    a = np.random.default_rng(1).normal(size=(5, 4))
    b = np.random.default_rng(2).normal(size=(5, 3))
    (want,) = session(root, "onnx-two-inputs").run(None, {"a": a.astype(np.float32), "b": b.astype(np.float32)})
    body = json.dumps({"a": a.tolist(), "b": b.tolist()}).encode()
    for accept in (JSON, CSV, NPY, JSONL):
        response = invoke(server, "two", body, JSON, accept)
        assert response.status_code == 200, response.text
        if accept == JSON:
            answer = np.array(response.json())
        elif accept == CSV:
            answer = np.loadtxt(io.StringIO(response.text), delimiter=",", ndmin=2)
        elif accept == NPY:
            answer = np.load(io.BytesIO(response.content), allow_pickle=False)
        else:
            answer = np.array([json.loads(line) for line in response.text.splitlines()])
        np.testing.assert_allclose(answer, want, rtol=1e-5, atol=1e-6)
    response = invoke(server, "two", npz(a=a, b=b), NPZ)  # an NPZ archive keyed by input name
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(np.array(response.json()), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "body, words",
    [
        ({"a": [[1, 2, 3, 4]]}, ["missing", "b"]),
        ({"a": [[1, 2, 3, 4]], "b": [[1, 2, 3]], "c": [[1]]}, ["unknown", "c"]),
        ([[1, 2, 3, 4]], ["2 inputs", "a, b"]),
        ({"a": [[1, 2, 3, 4]], "b": [[1, 2]]}, ["'b'", "shape"]),
    ],
)
def test_bad_inputs_of_a_two_input_model_are_400(server, body, words):
    response = invoke(server, "two", json.dumps(body).encode(), JSON)
    assert response.status_code == 400, response.text
    message = response.json()["message"]
    assert all(word in message for word in words), message


def test_wrong_shape_is_400_with_a_message(server):
    response = invoke(server, "classifier", b"[[1, 2, 3]]", JSON)
    assert response.status_code == 400
    assert "shape" in response.json()["message"] and "(N, 4)" in response.json()["message"]


def test_unknown_content_type_is_415(server):
    assert invoke(server, "classifier", b"1,2,3,4", "application/x-unknown").status_code == 415


def test_invalid_file_is_400(server, root):
    directory = root / "onnx-broken" / "model"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "net.onnx").write_bytes(b"not a protobuf at all")
    response = server.client.post("/models", json={"model_name": "broken", "url": str(directory)})
    assert response.status_code == 400, response.text
    assert "net.onnx" in response.json()["message"]


# ------------------------------------------------------------------ in process: find and session options


def test_find_prefers_model_onnx_and_refuses_ambiguity(tmp_path):
    assert handler.find(tmp_path) is None
    (tmp_path / "a.onnx").write_bytes(b"x")
    assert handler.find(tmp_path) == tmp_path / "a.onnx"
    (tmp_path / "b.onnx").write_bytes(b"x")
    with pytest.raises(handler.ModelLoadError, match="several"):
        handler.find(tmp_path)
    (tmp_path / "model.onnx").write_bytes(b"x")
    assert handler.find(tmp_path) == tmp_path / "model.onnx"


def test_session_options_threads():
    handler.setup(2)
    try:
        options = handler.session_options(fpmath_mode="STRICT", machine="x86_64")
        assert options.intra_op_num_threads == 2 and options.inter_op_num_threads == 1
    finally:
        handler.setup(1)


@pytest.mark.parametrize(
    "mode, machine, enabled",
    [
        ("BF16", "aarch64", True),
        ("bf16", "arm64", True),
        ("BF16", "x86_64", False),
        ("STRICT", "aarch64", False),
        (None, "aarch64", False),  # the worker's own mode: none given to setup
    ],
)
def test_bf16_fastmath_only_when_asked_on_arm(mode, machine, enabled):
    options = handler.session_options(fpmath_mode=mode, machine=machine)
    entries = options.get_session_config_entry(handler.BF16_FASTMATH) if enabled else None
    assert handler.wants_bf16_fastmath(mode, machine) is enabled
    if enabled:
        assert entries == "1"
    else:
        with pytest.raises(RuntimeError):
            options.get_session_config_entry(handler.BF16_FASTMATH)
