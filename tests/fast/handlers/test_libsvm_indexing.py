"""libsvm indices counted as XGBoost's own reader counts them (issue 20): zero-based by default,
one-based with ``indexing_mode=1``, detected with ``indexing_mode=-1``. The reference is the reader
itself: each body is written to a file and loaded as ``xgb.DMatrix("file?format=libsvm&indexing_mode=N")``,
as the AWS XGBoost container loads a request body, and the decoded matrix and a booster's
predictions on it must match what the reader made of the same bytes.
"""

import numpy as np
import pytest
import xgboost

from handlers.codecs import decode as codecs
from handlers.codecs import libsvm
from handlers.describe import describe, native_check
from handlers.errors import BadInput

pytestmark = pytest.mark.filterwarnings("ignore:.*Text file input has been deprecated")  # the reference reader

BODIES = {
    "one-based, as libsvm writes": b"1 1:0.5 2:-0.3 3:0.2 4:0.1\n0 2:1.5 4:-2\n",
    "zero-based": b"1 0:0.5 1:-0.3 2:0.2 3:0.1\n0 3:1\n",
    "no index 0, short rows": b"1 2:0.25\n0 1:3 3:0.75\n",
    "qid, comment, explicit zero": b"2 qid:7 1:0 3:1.25  # note 0:9\n1 qid:7 2:-1\n",
    "blank lines, repeated index": b"\n1 1:1 1:2\n\n0 4:0.5\n",
}
MODES = ["", "; indexing_mode=0", "; indexing_mode=1", "; indexing_mode=-1", "; charset=utf-8; Indexing_Mode=1"]


def reader(tmp_path, body: bytes, parameter: str) -> xgboost.DMatrix:
    """The body through XGBoost's libsvm reader, as the AWS XGBoost container reads it."""
    path = tmp_path / "body.libsvm"
    path.write_bytes(body)
    mode = libsvm.indexing_mode("text/libsvm" + parameter)
    return xgboost.DMatrix(f"{path}?format=libsvm&indexing_mode={mode}")


@pytest.fixture(scope="module")
def booster():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 5))
    return xgboost.train({"objective": "reg:squarederror", "max_depth": 4, "nthread": 1},
                         xgboost.DMatrix(X, label=X @ [1.0, -2.0, 0.5, 3.0, -1.0]), 12)


@pytest.mark.parametrize("parameter", MODES)
@pytest.mark.parametrize("name", BODIES)
def test_decoded_as_xgboosts_reader_reads_it(tmp_path, booster, name, parameter):
    body = BODIES[name]
    if parameter.lower().endswith("indexing_mode=1") and name in ("zero-based",):
        pytest.skip("index 0 in a one-based body: the reader fails, see the next test")
    expected = reader(tmp_path, body, parameter)
    decoded = codecs.decode(body, "text/libsvm" + parameter)
    assert decoded.shape == (expected.num_row(), expected.num_col())
    if name != "blank lines, repeated index":  # the reader keeps both entries (and predicts on the last)
        np.testing.assert_array_equal(decoded.toarray(), expected.get_data().toarray())
    width = 5
    got = booster.inplace_predict(libsvm.widen(decoded, width), validate_features=False)
    padded = xgboost.DMatrix(libsvm.widen(expected.get_data(), width))
    np.testing.assert_allclose(got, booster.predict(padded), rtol=1e-6)


def test_the_default_is_the_readers_zero_based(tmp_path):
    body = BODIES["one-based, as libsvm writes"]
    assert reader(tmp_path, body, "").num_col() == 5 == codecs.decode(body, "text/libsvm").shape[1]
    assert codecs.decode(body, "text/libsvm; indexing_mode=1").shape[1] == 4


def test_index_0_in_a_one_based_body_is_a_400_where_the_reader_fails_a_check(tmp_path):
    body = b"1 1:0.5\n0 0:0.2 2:1\n"
    with pytest.raises(xgboost.core.XGBoostError, match="Check failed"):
        reader(tmp_path, body, "; indexing_mode=1").get_data()  # index 0 - 1 wrapped to 2**32 - 1
    with pytest.raises(BadInput, match=r"libsvm line 2 uses index 0, and indexing_mode=1 reads indices one-based"):
        codecs.decode(body, "text/libsvm; indexing_mode=1")
    assert codecs.decode(body, "text/libsvm; indexing_mode=-1").shape == (2, 3)  # detected zero-based


@pytest.mark.parametrize("value", ["one", "", "1.5"])
def test_a_mode_that_is_not_a_whole_number_is_a_400(value):
    with pytest.raises(BadInput, match="indexing_mode=.* is not a whole number"):
        codecs.decode(b"1 1:1\n", f"text/libsvm; indexing_mode={value}")


def test_too_wide_by_one_without_index_0_says_how_to_send_one_based():
    matrix = codecs.decode(b"1 1:0.5 2:-0.3 3:0.2 4:0.1\n", "text/libsvm")
    with pytest.raises(BadInput) as raised:
        libsvm.widen(matrix, 4)
    assert "uses feature index 4; the model has 4 features (0 to 3)" in raised.value.message
    assert "Content-Type: text/libsvm; indexing_mode=1" in raised.value.message
    with pytest.raises(BadInput) as raised:
        libsvm.widen(codecs.decode(b"1 0:1 4:1\n", "text/libsvm"), 4)  # index 0 is there: no hint
    assert "indexing_mode" not in raised.value.message


def test_a_native_check_failure_is_the_requests_400_without_native_text(booster):
    with pytest.raises(xgboost.core.XGBoostError) as raised:
        booster.predict(xgboost.DMatrix(np.ones((2, 7))))
    assert "Check failed" in str(raised.value) and "[bt]" in str(raised.value)
    failure = describe(raised.value)
    assert failure.status == 400, failure.body()
    assert failure.message == ("the model cannot predict on this input: "
                               "Number of columns does not match number of features in booster (5 vs. 7)")
    assert native_check(ValueError("x.cc:1: Check failed: a")) is None  # only XGBoost's own


def test_an_xgboost_error_that_is_no_check_stays_a_500():
    failure = describe(xgboost.core.XGBoostError("value -3 for Parameter max_depth should be greater equal to 0"))
    assert failure.status == 500
