"""Content types (CONTRACT.md §5–6) through a single-model server: every type in and out, and
each bad input answered with its own status and a message naming the problem."""

import io
import json

import numpy as np
import pytest

from tests.builders import classifier, npy, npz, sklearn_model


@pytest.fixture(scope="module")
def server(start_module_server, tmp_path_factory):
    directory = sklearn_model(tmp_path_factory.mktemp("single") / "model")
    return start_module_server(MODEL_SERVER_MODEL_DIR=directory, SAGEMAKER_MAX_PAYLOAD_IN_MB="1")


def batch() -> np.ndarray:
    """Rows from the training distribution, so the classes predicted differ."""
    return classifier()[1][:8]


@pytest.fixture(scope="module")
def expected():
    model, X = classifier()
    answer = model.predict(X[:8]).tolist()
    assert len(set(answer)) > 1
    return answer


BODIES = {
    "application/json": lambda a: json.dumps(a.tolist()).encode(),
    "application/json; charset=utf-8": lambda a: json.dumps({"instances": a.tolist()}).encode(),
    "text/csv": lambda a: "\n".join(",".join(str(float(v)) for v in row) for row in a).encode(),
    "text/csv; charset=utf-8": lambda a: ("\n".join(",".join(str(float(v)) for v in row) for row in a) + "\n").encode(),
    "application/x-npy": npy,
    "application/x-npz": lambda a: npz(x=a),
    "application/jsonlines": lambda a: "\n".join(json.dumps(row) for row in a.tolist()).encode(),
}


@pytest.mark.parametrize("content_type", list(BODIES))
def test_each_type_in(server, expected, content_type):
    response = server.client.post("/invocations", content=BODIES[content_type](batch()), headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text
    assert response.json() == expected


@pytest.mark.parametrize("layout", ["csr", "csc", "coo"])
def test_scipy_sparse_npz_is_one_matrix(server, expected, layout):
    """scipy.sparse.save_npz (the SageMaker SDK's SparseMatrixSerializer) is one matrix, not named arrays."""
    import scipy.sparse

    body = io.BytesIO()
    scipy.sparse.save_npz(body, scipy.sparse.csr_matrix(batch()).asformat(layout), compressed=layout == "csc")
    response = server.client.post("/invocations", content=body.getvalue(), headers={"Content-Type": "application/x-npz"})
    assert response.status_code == 200, response.text
    assert response.json() == expected


def test_inconsistent_sparse_npz_is_a_400(server):
    body = npz(format=np.array(b"csr"), shape=np.array([2, 4]), data=np.array([1.0]), indices=np.array([9]), indptr=np.array([0, 1, 1]))
    response = server.client.post("/invocations", content=body, headers={"Content-Type": "application/x-npz"})
    assert response.status_code == 400
    assert response.json()["message"] == "sparse NPZ body (csr) is inconsistent: indices must be < 4"


@pytest.mark.parametrize(
    "accept, media, parse",
    [
        ("application/json", "application/json", lambda b: json.loads(b)),
        ("text/csv", "text/csv", lambda b: [int(line) for line in b.decode().split()]),
        ("application/x-npy", "application/x-npy", lambda b: np.load(io.BytesIO(b)).tolist()),
        ("application/jsonlines", "application/jsonlines", lambda b: [json.loads(l) for l in b.decode().splitlines()]),
        ("text/html;q=0.9, text/csv;q=0.5", "text/csv", lambda b: [int(line) for line in b.decode().split()]),
        ("application/x-npy;q=0.2, application/json;q=0.8", "application/json", lambda b: json.loads(b)),
        ("text/*", "text/csv", lambda b: [int(line) for line in b.decode().split()]),
        ("*/*", "application/json", lambda b: json.loads(b)),
        (None, "application/json", lambda b: json.loads(b)),
    ],
)
def test_each_type_out(server, expected, accept, media, parse):
    headers = {"Content-Type": "application/json"}
    if accept:
        headers["Accept"] = accept
    response = server.client.post("/invocations", content=BODIES["application/json"](batch()), headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].split(";")[0] == media
    assert parse(response.content) == expected


@pytest.mark.parametrize(
    "content_type, body, status, words",
    [
        ("application/json", b"[[1, 2, 3, 4]", 400, "not valid JSON"),
        ("application/json", b"[[1, 2, 3, 4], [1, 2]]", 400, "rectangular"),
        ("application/json", b"[[1, 2, 3]]", 400, "3 features; the model expects 4"),
        ("application/json", b"[[[1, 2, 3, 4]]]", 400, "2-D"),
        ("text/csv", b"1,2,x,4", 400, "CSV"),
        ("text/csv", b"1,nan,3,4", 400, "NaN"),  # LogisticRegression refuses missing values
        ("text/csv", b"1,inf,3,4", 400, "infinity"),
        ("text/csv", b"\xff\xfe", 400, "UTF-8"),
        ("application/x-npy", b"not numpy at all", 400, "NumPy"),
        ("application/jsonlines", b"[1,2,3,4]\n{oops", 400, "record 2"),
        ("application/json", b"", 400, "empty"),
        ("application/xml", b"<a/>", 415, "application/xml"),
        (None, b"1,2,3,4", 415, "(none)"),
    ],
)
def test_bad_input(server, content_type, body, status, words):
    headers = {"Content-Type": content_type} if content_type else {}
    response = server.client.post("/invocations", content=body, headers=headers)
    assert response.status_code == status, response.text
    answer = response.json()
    assert answer["code"] == status and words in answer["message"]
    assert "Traceback" not in answer["message"]


def test_unsatisfiable_accept_is_406(server):
    response = server.client.post(
        "/invocations", content=b"1,2,3,4", headers={"Content-Type": "text/csv", "Accept": "image/png, text/html"}
    )
    assert response.status_code == 406
    assert "image/png" in response.json()["message"] and "application/json" in response.json()["message"]


def test_body_over_the_payload_limit_is_413(server):
    big = b"1,2,3,4\n" * (2**20 // 8 + 10)
    response = server.client.post("/invocations", content=big, headers={"Content-Type": "text/csv"})
    assert response.status_code == 413 and "limit" in response.json()["message"]

    def chunks():  # no Content-Length: the limit must hold while streaming too
        for _ in range(40):
            yield b"1,2,3,4\n" * 4096

    response = server.client.post("/invocations", content=chunks(), headers={"Content-Type": "text/csv"})
    assert response.status_code == 413
    assert server.client.post("/invocations", content=b"1,2,3,4", headers={"Content-Type": "text/csv"}).status_code == 200


def test_pickled_npy_is_refused_without_unpickling(server, tmp_path):
    marker = tmp_path / "unpickled"

    class Bomb:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    body = io.BytesIO()
    np.save(body, np.array([Bomb()], dtype=object), allow_pickle=True)
    for content_type, payload in [("application/x-npy", body.getvalue()), ("application/x-npz", npz(x=np.array([Bomb()], dtype=object)))]:
        response = server.client.post("/invocations", content=payload, headers={"Content-Type": content_type})
        assert response.status_code == 400
        assert "pickled" in response.json()["message"]
    assert not marker.exists()


def test_default_accept_comes_from_the_environment(start_server, tmp_path):
    directory = sklearn_model(tmp_path / "model")
    server = start_server(MODEL_SERVER_MODEL_DIR=directory, SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT="text/csv")
    response = server.client.post("/invocations", content=b"1,2,3,4", headers={"Content-Type": "text/csv"})
    assert response.headers["content-type"].startswith("text/csv")
    response = server.client.post(
        "/invocations", content=b"1,2,3,4", headers={"Content-Type": "text/csv", "Accept": "*/*"}
    )
    assert response.headers["content-type"].startswith("text/csv")


def test_a_model_that_takes_missing_values_gets_them(start_server, tmp_path):
    """Rows with NaN reach a model that handles them (HistGradientBoosting), answered as
    in-process, while the LogisticRegression above refuses them with a 400."""
    import joblib
    from sklearn.ensemble import HistGradientBoostingClassifier

    _, X = classifier()
    X = X.copy()
    X[::5, 1] = np.nan
    model = HistGradientBoostingClassifier(max_iter=20).fit(X, (np.nan_to_num(X[:, 0]) > 0).astype(int))
    directory = tmp_path / "model"
    directory.mkdir()
    joblib.dump(model, directory / "model.joblib")
    server = start_server(MODEL_SERVER_MODEL_DIR=directory)
    rows = X[:10]
    response = server.client.post("/invocations", content=BODIES["text/csv"](rows), headers={"Content-Type": "text/csv"})
    assert response.status_code == 200, response.text
    assert response.json() == model.predict(rows).tolist()
