"""XGBoost files that XGBoost 3 cannot read (issue 8, point 6): the old binary format of XGBoost
before 1.0 and of the 1.x SageMaker containers, bare or inside a pickled Booster. LoadModel
answers 500 saying so and how to re-save the model, never XGBoost's native stack trace.

The legacy files are built here byte by byte: the 136-byte LearnerModelParam header (with its
major/minor version fields), then the objective's and booster's names as length-prefixed strings,
the layout XGBoost 0.x and 1.x wrote.
"""

import copyreg
import pickle
import struct

import numpy as np
import pytest
import xgboost

CSV = {"Content-Type": "text/csv"}


def legacy_binary(major: int = 0, minor: int = 0, binf: bool = False) -> bytes:
    param = struct.pack("<fIiiiII", 0.5, 4, 0, 0, 0, major, minor) + bytes(136 - 28)
    names = b"".join(struct.pack("<Q", len(name)) + name for name in (b"binary:logistic", b"gbtree"))
    return (b"binf" if binf else b"") + param + names + bytes(64)


class _OldPickledBooster:
    """Pickles as a Booster whose saved state is a legacy binary buffer, as XGBoost 0.90's did."""

    def __reduce__(self):
        return copyreg._reconstructor, (xgboost.core.Booster, object, None), {"handle": bytearray(legacy_binary())}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("xgb")
    files = {
        "pre-1.0": legacy_binary(),
        "binf-1.7": legacy_binary(1, 7, binf=True),
        "old-pickle": pickle.dumps(_OldPickledBooster(), protocol=2),
        "garbled": b"\x07\x01garbage that no XGBoost ever wrote" * 8,
        "truncated": legacy_binary()[:100],
    }
    for name, raw in files.items():
        (root / name).mkdir()
        (root / name / "xgboost-model").write_bytes(raw)
    X = np.random.default_rng(0).normal(size=(60, 4))
    booster = xgboost.train({"objective": "binary:logistic"}, xgboost.DMatrix(X, label=X[:, 0] > 0), 3)
    (root / "pickled-now").mkdir()
    (root / "pickled-now" / "xgboost-model").write_bytes(pickle.dumps(booster))
    return root


@pytest.fixture(scope="module")
def server(start_module_server, root):
    return start_module_server(SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=root)


def _clean(message: str) -> None:
    for leak in ("[bt]", "libxgboost", "Stack trace", "/workspace", str(xgboost.__file__).rsplit("/", 2)[0]):
        assert leak not in message


@pytest.mark.parametrize("name, written", [
    ("pre-1.0", "written by XGBoost before 1.0"),
    ("binf-1.7", "written by XGBoost 1.7"),
    ("old-pickle", "pickled by another XGBoost"),
])
def test_legacy_binary_is_a_500_saying_how_to_resave(server, name, written):
    answer = server.client.post("/models", json={"model_name": name, "url": name})
    assert answer.status_code == 500, answer.text
    message = answer.json()["message"]
    assert "legacy binary format" in message and written in message, message
    assert f"XGBoost {xgboost.__version__} cannot read" in message
    assert "save_model('xgboost-model.json')" in message and "UBJ" in message
    _clean(message)


@pytest.mark.parametrize("name", ["garbled", "truncated"])
def test_unreadable_file_names_the_formats_without_native_frames(server, name):
    answer = server.client.post("/models", json={"model_name": name, "url": name})
    assert answer.status_code == 500, answer.text
    message = answer.json()["message"]
    assert message.startswith("xgboost-model is not an XGBoost JSON, UBJ or pickled model"), message
    assert "legacy" not in message
    _clean(message)


def test_a_booster_pickled_by_this_xgboost_still_serves(server):
    assert server.client.post("/models", json={"model_name": "now", "url": "pickled-now"}).status_code == 200
    answer = server.client.post("/models/now/invoke", content=b"1,0,0,0\n-1,0,0,0", headers=CSV)
    assert answer.status_code == 200 and len(answer.json()) == 2
