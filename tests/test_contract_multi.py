"""Multi-model mode, CONTRACT.md §3: every API and every status code it names."""

import os

import numpy as np
import pytest

from tests.builders import classifier, rows, sklearn_model

CSV = {"Content-Type": "text/csv"}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    for index in range(3):
        sklearn_model(root / f"m{index}" / "model")
    (root / "not-a-dir").write_text("x")
    (root / "unrecognised" / "model").mkdir(parents=True)
    (root / "unrecognised" / "model" / "weights.bin").write_bytes(b"\0" * 10)
    corrupt = root / "corrupt" / "model"
    corrupt.mkdir(parents=True)
    (corrupt / "model.joblib").write_bytes(b"this is not a joblib file")
    outside = tmp_path_factory.mktemp("outside")
    sklearn_model(outside / "model")
    os.symlink(outside / "model", root / "escape")
    return root


@pytest.fixture(scope="module")
def server(start_module_server, root):
    return start_module_server(SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=root)


def test_ping_is_200_with_zero_models(server):
    assert server.client.get("/models").json() == {"models": []}
    response = server.client.get("/ping")
    assert response.status_code == 200
    assert response.content == b""


def test_load_invoke_describe_unload_reload(server, root):
    url = str(root / "m0" / "model")
    assert server.load("alpha", url).json()["modelName"] == "alpha"
    model, _ = classifier()
    batch = rows(5)
    body = "\n".join(",".join(str(v) for v in row) for row in batch)
    response = server.client.post("/models/alpha/invoke", content=body, headers=CSV)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == model.predict(batch).tolist()

    described = server.client.get("/models/alpha").json()
    assert described["modelName"] == "alpha" and described["modelUrl"] == url
    assert described["status"] == "READY" and described["framework"] == "sklearn"

    assert server.client.delete("/models/alpha").status_code == 200
    assert server.client.get("/models/alpha").status_code == 404
    gone = server.client.post("/models/alpha/invoke", content=body, headers=CSV)
    assert gone.status_code == 404 and gone.json()["type"] == "ModelNotFoundException"
    assert server.client.delete("/models/alpha").status_code == 404

    server.load("alpha", url)  # the same name again, after its unload
    assert server.client.post("/models/alpha/invoke", content=body, headers=CSV).status_code == 200
    assert server.client.delete("/models/alpha").status_code == 200


def test_load_twice_is_409(server, root):
    server.load("dup", root / "m1" / "model")
    response = server.load("dup", root / "m2" / "model", expect=409)
    assert response.json()["code"] == 409 and "already loaded" in response.json()["message"]
    assert server.client.get("/models/dup").json()["modelUrl"] == str(root / "m1" / "model")
    server.client.delete("/models/dup")


@pytest.mark.parametrize(
    "where, status, words",
    [
        ("missing/model", 404, "does not exist"),
        ("not-a-dir", 404, "not a directory"),
        ("escape", 400, "not inside the models root"),
        ("../../etc", 400, "not inside the models root"),
        ("unrecognised/model", 400, "weights.bin"),
        ("corrupt/model", 500, ""),
    ],
)
def test_load_failures(server, root, where, status, words):
    url = str(root / where) if not where.startswith("..") else f"{root}/{where}"
    response = server.load("failing", url, expect=status)
    body = response.json()
    assert body["code"] == status and words in body["message"]
    expected_types = {400: {"BadRequestException", "InvalidModelException"}, 404: {"ResourceNotFoundException"},
                      500: {"InternalServerException"}}
    assert body["type"] in expected_types[status], body
    assert "Traceback" not in body["message"] and str(root) not in body["message"]
    assert server.client.get("/models/failing").status_code == 404  # nothing half-loaded stays
    assert server.client.get("/ping").status_code == 200


@pytest.mark.parametrize(
    "body, words",
    [
        (b"not json", "must be JSON"),
        (b"[1, 2]", "model_name and url"),
        (b'{"model_name": "x"}', "model_name and url"),
        (b'{"model_name": "", "url": "m0/model"}', "non-empty"),
        (b'{"model_name": 5, "url": "m0/model"}', "non-empty string"),
        (b'{"model_name": "a/b", "url": "m0/model"}', "'/'"),
        (b'{"model_name": "..", "url": "m0/model"}', "'..'"),
        (b'{"model_name": "a\\u0000b", "url": "m0/model"}', "control character"),
        (b'{"model_name": "a\\nb", "url": "m0/model"}', "control character"),
        (b'{"model_name": "' + b"x" * 300 + b'", "url": "m0/model"}', "longer than"),
        (b'{"model_name": "ok", "url": 7}', "url"),
    ],
)
def test_load_bad_body_is_400(server, body, words):
    response = server.client.post("/models", content=body)
    assert response.status_code == 400, response.text
    assert words in response.json()["message"]
    assert server.client.get("/models").json()["models"] == []


def test_untrusted_names_work_through_every_api(server, root):
    """Names that are legal but awkward in a URL must load, invoke, describe and unload."""
    names = ["with space", "dots..inside", "ünïcødé-名前", "percent%2Fslash", "q?x=1#frag", "a" * 256]
    body = ",".join(str(v) for v in rows(1)[0])
    for name in names:
        server.load(name, root / "m0" / "model")
    listed = [m["modelName"] for m in server.client.get("/models").json()["models"]]
    assert sorted(names) == listed
    from urllib.parse import quote

    for name in names:
        path = "/models/" + quote(name, safe="")
        assert server.client.get(path).json()["modelName"] == name
        assert server.client.post(path + "/invoke", content=body, headers=CSV).status_code == 200
        assert server.client.delete(path).status_code == 200
    assert server.client.get("/models").json()["models"] == []


def test_list_models_pages_in_stable_order(server, root):
    names = [f"page-{index:02d}" for index in range(12)]
    for name in reversed(names):
        server.load(name, root / "m1" / "model")
    seen, token, pages = [], None, 0
    while True:
        params = {"limit": 5}
        if token:
            params["next_page_token"] = token
        page = server.client.get("/models", params=params).json()
        pages += 1
        seen += [m["modelName"] for m in page["models"]]
        assert all(m["modelUrl"] == str(root / "m1" / "model") for m in page["models"])
        token = page.get("nextPageToken")
        if token is None:
            break
    assert pages == 3 and seen == names
    # The camelCase spelling of the token works too, and a page survives a model going away.
    first = server.client.get("/models", params={"limit": 5}).json()
    server.client.delete("/models/page-07")
    second = server.client.get("/models", params={"limit": 5, "nextPageToken": first["nextPageToken"]}).json()
    assert [m["modelName"] for m in second["models"]] == ["page-05", "page-06", "page-08", "page-09", "page-10"]
    for name in names:
        server.client.delete(f"/models/{name}")


@pytest.mark.parametrize("params", [{"limit": "0"}, {"limit": "abc"}, {"limit": "100000"}, {"next_page_token": "%%%"}])
def test_list_models_bad_query_is_400(server, params):
    response = server.client.get("/models", params=params)
    assert response.status_code == 400 and response.json()["code"] == 400


def test_invocations_on_a_multi_model_server_points_to_invoke(server):
    response = server.client.post("/invocations", content=b"1,2,3,4", headers=CSV)
    assert response.status_code == 404 and "/models/{name}/invoke" in response.json()["message"]


def test_unknown_routes_and_methods_answer_json(server):
    assert server.client.get("/nope").json() == {"code": 404, "type": "ResourceNotFoundException", "message": "no such route"}
    response = server.client.put("/models")
    assert response.status_code == 405 and response.json()["code"] == 405


def test_507_before_memory_runs_out(start_server, root, tmp_path):
    """A model whose estimate does not fit the budget is refused with 507; the rest goes on."""
    big = tmp_path / "big" / "model"
    big.mkdir(parents=True)
    with open(big / "model.joblib", "wb") as file:  # sparse: large on paper, nothing on disk
        file.truncate(2 * 2**30)
    server = start_server(
        SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=tmp_path,
        MODEL_SERVER_MEMORY_LIMIT_MB="1024", MODEL_SERVER_MEMORY_HEADROOM_MB="0",
    )
    small = sklearn_model(tmp_path / "small" / "model")
    server.load("small", small)
    response = server.load("big", big, expect=507)
    assert "not enough memory" in response.json()["message"]
    assert server.client.get("/models/big").status_code == 404
    assert server.client.get("/ping").status_code == 200
    answer = server.client.post("/models/small/invoke", content=b"1,2,3,4", headers=CSV)
    assert answer.status_code == 200
    metrics = server.client.get("/metrics").text
    assert 'model_load_failures_total{code="507",framework="sklearn"} 1.0' in metrics


def test_a_memory_error_is_507_only_when_the_budget_says_no(start_server, tmp_path):
    """A MemoryError with memory to spare is the request's fault (400): a 507 would make the
    platform evict healthy models for nothing. Once the tree really holds more than the budget,
    the same MemoryError is a 507."""
    code = """
    import numpy as np
    held = []

    def predict_fn(data, model):
        if data[0][0] > 100:
            held.append(np.ones(int(data[0][0]) * 2**20 // 8))  # really take that many MB, and keep it
        raise MemoryError("cannot allocate the batch")
    """
    sklearn_model(tmp_path / "oom" / "model", code=code)
    server = start_server(SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=tmp_path,
                          MODEL_SERVER_MEMORY_LIMIT_MB="700", MODEL_SERVER_MEMORY_HEADROOM_MB="0")
    server.load("oom", tmp_path / "oom" / "model")
    response = server.client.post("/models/oom/invoke", content=b"1,2,3,4", headers=CSV)
    assert response.status_code == 400, response.text
    assert "more memory than can be had" in response.json()["message"]
    response = server.client.post("/models/oom/invoke", content=b"800,2,3,4", headers=CSV)
    assert response.status_code == 507, response.text
    assert response.json()["type"] == "InsufficientMemoryException" and "out of memory" in response.json()["message"]


def test_the_framework_marker_wins_over_detection(server, root, tmp_path):
    """A directory with both an sklearn and an XGBoost file: detection takes sklearn (first in
    order); a FRAMEWORK file saying xgboost routes it to the XGBoost worker instead."""
    import shutil

    import xgboost

    from models import data

    X, y = data.classification(classes=2, seed=9)
    booster = xgboost.train({"objective": "binary:logistic"}, xgboost.DMatrix(X, label=y), 5)
    for name, marker in (("detected", None), ("marked", "xgboost\n"), ("badmark", "caffe\n")):
        directory = root / f"both-{name}" / "model"
        shutil.copytree(root / "m0" / "model", directory)
        booster.save_model(directory / "xgboost-model.json")
        if marker:
            (directory / "FRAMEWORK").write_text(marker)
    server.load("detected", root / "both-detected" / "model")
    server.load("marked", root / "both-marked" / "model")
    assert server.client.get("/models/detected").json()["framework"] == "sklearn"
    assert server.client.get("/models/marked").json()["framework"] == "xgboost"
    answer = server.client.post("/models/marked/invoke", content=b"1,2,3,4", headers=CSV)
    np.testing.assert_allclose(answer.json(), booster.predict(xgboost.DMatrix(np.array([[1.0, 2, 3, 4]]))), rtol=1e-6)
    refused = server.load("badmark", root / "both-badmark" / "model", expect=400)
    assert "unknown framework 'caffe'" in refused.json()["message"]
    for name in ("detected", "marked"):
        server.client.delete(f"/models/{name}")
