"""``text/libsvm`` (and ``text/x-libsvm``) request bodies, as the AWS XGBoost container takes them.

One row a line: ``[label] index:value index:value ...``, indices zero-based as XGBoost's own
libsvm reader counts them (a model trained on ``1:x 2:y`` files has a column 0 that stays empty).
The label, ``qid:`` tokens and ``# comments`` are ignored: at inference only the features count.
A body decodes to a SciPy CSR matrix as wide as its largest index; ``dense`` and ``widen`` give
frameworks the width their model expects (XGBoost predicts on the sparse matrix, scikit-learn
on a dense array).
"""

from typing import Any

import numpy as np

from handlers.errors import BadInput

CONTENT_TYPE = "text/libsvm"
ALIASES = {"text/x-libsvm": CONTENT_TYPE, "application/x-libsvm": CONTENT_TYPE}
MAX_INDEX = 2**31 - 2


def decode(body: bytes) -> Any:
    """A libsvm body as a ``scipy.sparse.csr_matrix`` of float32; 400 naming a bad line."""
    import scipy.sparse

    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput("libsvm body is not UTF-8 text") from None
    values: list[float] = []
    indices: list[int] = []
    indptr = [0]
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        tokens = line.split()
        if ":" not in tokens[0]:
            tokens = tokens[1:]  # the label
        for token in tokens:
            index, colon, value = token.partition(":")
            if index == "qid":
                continue
            try:
                column, number_value = int(index), float(value)
            except ValueError:
                column = -1
            if not colon or not 0 <= column <= MAX_INDEX:
                raise BadInput(f"libsvm line {number}: {token[:40]!r} is not index:value with a whole index >= 0") from None
            indices.append(column)
            values.append(number_value)
        indptr.append(len(indices))
    if len(indptr) == 1:
        raise BadInput("libsvm body holds no rows")
    width = max(indices) + 1 if indices else 0
    matrix = scipy.sparse.csr_matrix(
        (np.asarray(values, np.float32), np.asarray(indices, np.int32), np.asarray(indptr, np.int64)),
        shape=(len(indptr) - 1, width),
    )
    matrix.sum_duplicates()  # an index twice in a row: XGBoost's reader adds them too
    return matrix


def is_sparse(data: Any) -> bool:
    """Whether ``data`` is a SciPy sparse matrix (what libsvm and sparse RecordIO bodies decode to)."""
    return hasattr(data, "tocsr") and hasattr(data, "nnz")


def widen(matrix: Any, expected: int | None) -> Any:
    """``matrix`` as CSR with ``expected`` columns (a row's trailing zeros are not written in
    libsvm); 400 when it uses a column the model does not have."""
    matrix = matrix.tocsr()
    if expected is None or matrix.shape[1] == expected:
        return matrix
    if matrix.shape[1] > expected:
        raise BadInput(f"input uses feature index {matrix.shape[1] - 1}; the model has {expected} features (0 to {expected - 1})")
    matrix = matrix.copy()
    matrix.resize((matrix.shape[0], expected))
    return matrix


def dense(data: Any, expected: int | None) -> Any:
    """``data`` as a dense array ``expected`` wide when it is sparse; anything else as it is."""
    return widen(data, expected).toarray() if is_sparse(data) else data
