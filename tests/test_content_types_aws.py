"""The AWS XGBoost and built-in algorithm content types (issue 8, point 4), over HTTP:
``text/libsvm`` (and ``text/x-libsvm``) in; ``application/x-recordio-protobuf`` in and out.

RecordIO bodies in are the SageMaker Python SDK's own output (tests/fixtures/recordio); the
answers are read back with a protobuf wire reader written here, independent of the server's
schema, so a wrong field number or framing fails the test.
"""

import struct
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
import xgboost

from handlers.codecs.media import RECORDIO
from tests.builders import sklearn_model

pytestmark = pytest.mark.filterwarnings("ignore:.*Text file input has been deprecated")  # the reference reader
FIXTURES = Path(__file__).parent / "fixtures" / "recordio"
DENSE = np.array([[0.5, -1.25, 2.0, 3.5], [1.0, 0.0, -0.5, 4.25], [-2.0, 1.5, 0.25, -3.0]], np.float32)
SPARSE = np.array([[1.5, 0, 0, 2.0], [0, 0.5, 0, 0], [0, 0, 1.0, 0]], np.float32)
LIBSVM = b"1 0:1.5 3:2.0\n0 1:0.5\n1 2:1.0  # a comment\n"  # SPARSE, with labels


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("aws-types")
    sklearn_model(root / "sk")
    X = np.random.default_rng(1).normal(size=(200, 4))
    X[X < -0.5] = np.nan  # missing values, as sparse rows leave out
    booster = xgboost.train({"objective": "reg:squarederror", "max_depth": 3},
                            xgboost.DMatrix(X, label=np.nansum(X, axis=1)), 10)
    (root / "xgb").mkdir()
    booster.save_model(root / "xgb" / "xgboost-model.json")
    return root


@pytest.fixture(scope="module")
def server(start_module_server, root):
    server = start_module_server(SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=root)
    for name in ("sk", "xgb"):
        assert server.client.post("/models", json={"model_name": name, "url": name}).status_code == 200
    return server


@pytest.fixture(scope="module")
def booster(root):
    return xgboost.Booster(model_file=str(root / "xgb" / "xgboost-model.json"))


@pytest.fixture(scope="module")
def estimator(root):
    import joblib

    return joblib.load(root / "sk" / "model.joblib")


def invoke(server, name, body, content_type, accept="application/json"):
    return server.client.post(f"/models/{name}/invoke", content=body, headers={"Content-Type": content_type, "Accept": accept})


# ------------------------------------------------------------------ an independent reader of the answers


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at, shift = at + 1, shift + 7
        if not byte & 0x80:
            return value, at


def _fields(data: bytes) -> list[tuple[int, int, bytes | int]]:
    """(field number, wire type, payload) of a protobuf message, length-delimited payloads as bytes."""
    out, at = [], 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 2:
            length, at = _varint(data, at)
            out.append((number, wire, data[at: at + length]))
            at += length
        elif wire == 0:
            value, at = _varint(data, at)
            out.append((number, wire, value))
        else:
            raise AssertionError(f"unexpected wire type {wire}")
    return out


def read_scores(body: bytes) -> list[dict[str, list[float]]]:
    """Each record's labels as {name: float32 values}: RecordIO frames of Record{label(2): map
    entry{key(1), value(2): Value{float32_tensor(2): Float32Tensor{values(1), packed}}}}."""
    records, at = [], 0
    while at < len(body):
        magic, length = struct.unpack_from("<II", body, at)
        assert magic == 0xCED7230A
        payload = body[at + 8: at + 8 + length]
        at += 8 + length + (-length % 4)
        labels = {}
        for number, _, entry in _fields(payload):
            assert number == 2, f"the answer carries field {number}; only label (2) is expected"
            parts = dict((n, p) for n, _, p in _fields(entry))
            (tensor_number, _, tensor), = _fields(parts[2])
            assert tensor_number == 2  # float32_tensor
            (values_number, _, packed), = _fields(tensor)
            assert values_number == 1
            labels[parts[1].decode()] = list(struct.unpack(f"<{len(packed) // 4}f", packed))
        records.append(labels)
    return records


# ------------------------------------------------------------------ libsvm


@pytest.mark.parametrize("content_type", ["text/libsvm", "text/x-libsvm", "text/libsvm; charset=utf-8"])
def test_libsvm_to_xgboost_predicts_as_a_libsvm_dmatrix(server, booster, tmp_path, content_type):
    """The reference is XGBoost's own libsvm reader, the AWS XGBoost container's way in."""
    (tmp_path / "rows.libsvm").write_bytes(LIBSVM)
    expected = booster.predict(xgboost.DMatrix(f"{tmp_path / 'rows.libsvm'}?format=libsvm"))
    answer = invoke(server, "xgb", LIBSVM, content_type)
    assert answer.status_code == 200, answer.text
    np.testing.assert_allclose(answer.json(), expected, rtol=1e-6)
    dense_answer = invoke(server, "xgb", b"1.5,0,0,2\n0,0.5,0,0\n0,0,1,0", "text/csv").json()
    assert not np.allclose(dense_answer, expected)  # sparse means missing, not zero


def test_libsvm_to_sklearn_is_a_dense_array(server, estimator):
    answer = invoke(server, "sk", b"0:0.5 1:-1.25 2:2 3:3.5\n3:1\n", "text/libsvm")
    assert answer.status_code == 200, answer.text
    assert answer.json() == estimator.predict(np.array([[0.5, -1.25, 2, 3.5], [0, 0, 0, 1.0]])).tolist()


@pytest.mark.parametrize("body, status, words", [
    (b"1 0:1.5 x:2\n", 400, "libsvm line 1: 'x:2'"),
    (b"1 0:1.5\n0 -3:1\n", 400, "libsvm line 2"),
    (b"\n# only a comment\n", 400, "no rows"),
    (b"0:1 9:1\n", 400, "feature index 9; the model has 4 features"),
])
def test_bad_libsvm_is_400_naming_the_problem(server, body, status, words):
    answer = invoke(server, "xgb", body, "text/libsvm")
    assert answer.status_code == status and words in answer.json()["message"], answer.text


# ------------------------------------------------------------------ RecordIO-protobuf


@pytest.mark.parametrize("fixture", ["dense_float32.rec", "dense_float64.rec"])
def test_sdk_dense_records_to_sklearn(server, estimator, fixture):
    answer = invoke(server, "sk", (FIXTURES / fixture).read_bytes(), RECORDIO)
    assert answer.status_code == 200, answer.text
    assert answer.json() == estimator.predict(DENSE).tolist()


def test_sdk_sparse_records_to_xgboost_stay_sparse(server, booster):
    answer = invoke(server, "xgb", (FIXTURES / "sparse_float32.rec").read_bytes(), RECORDIO)
    assert answer.status_code == 200, answer.text
    np.testing.assert_allclose(answer.json(), booster.inplace_predict(scipy.sparse.csr_matrix(SPARSE)), rtol=1e-6)


def test_recordio_answer_is_one_record_per_row_with_a_score(server, estimator):
    answer = invoke(server, "sk", (FIXTURES / "dense_float32.rec").read_bytes(), RECORDIO, accept=RECORDIO)
    assert answer.status_code == 200 and answer.headers["content-type"] == RECORDIO, answer.text
    assert read_scores(answer.content) == [{"score": [float(v)]} for v in estimator.predict(DENSE)]


def test_libsvm_in_recordio_out_from_xgboost(server, booster, tmp_path):
    (tmp_path / "rows.libsvm").write_bytes(LIBSVM)
    expected = booster.predict(xgboost.DMatrix(f"{tmp_path / 'rows.libsvm'}?format=libsvm"))
    answer = invoke(server, "xgb", LIBSVM, "text/x-libsvm", accept=RECORDIO)
    assert answer.status_code == 200, answer.text
    scores = [record["score"] for record in read_scores(answer.content)]
    np.testing.assert_allclose(np.array(scores).ravel(), expected, rtol=1e-6)


def test_recordio_is_offered_by_accept_negotiation(server):
    answer = invoke(server, "sk", b"1,2,3,4", "text/csv", accept="text/html, application/x-recordio-protobuf;q=0.5")
    assert answer.status_code == 200 and answer.headers["content-type"] == RECORDIO
    assert len(read_scores(answer.content)) == 1


def _frame(payload: bytes, magic: int = 0xCED7230A) -> bytes:
    return struct.pack("<II", magic, len(payload)) + payload + b"\0" * (-len(payload) % 4)


@pytest.mark.parametrize("body, words", [
    (_frame(b"\x0a\x02ab", magic=0x12345678), "magic number"),
    ((FIXTURES / "dense_float32.rec").read_bytes()[:-20], "the body ends first"),
    (_frame(b"\xff\xff\xff"), "is not a protobuf Record"),
    (_frame(b""), "has no features[\"values\"] tensor"),
    (b"\x0a\x23\xd7", "ends inside a frame header"),
])
def test_bad_recordio_is_400_naming_the_problem(server, body, words):
    answer = invoke(server, "sk", body, RECORDIO)
    assert answer.status_code == 400 and words in answer.json()["message"], answer.text
