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

MAX_INDEX = 2**31 - 2


def _features(text: str) -> tuple[list[str], list[int]]:
    """Each row's ``index:value`` tokens as one string, and how many each holds: labels, ``qid:``
    and comments dropped, blank lines skipped."""
    rows, counts = [], []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        head, *rest = line.split(None, 1)
        if ":" not in head:
            line = rest[0] if rest else ""  # the label
        if "qid:" in line:
            line = " ".join(token for token in line.split() if not token.startswith("qid:"))
        rows.append(line)
        counts.append(line.count(":"))
    return rows, counts


def _is_pair(token: str) -> bool:
    index, colon, value = token.partition(":")
    if not colon or not index.isdigit() or int(index) > MAX_INDEX:
        return False
    try:
        float(value)
    except ValueError:
        return False
    return True


def _bad_token(text: str) -> BadInput:
    """The 400 naming the first token that is not ``index:value`` (the slow, precise pass)."""
    for number, line in enumerate(text.splitlines(), start=1):
        tokens = line.split("#", 1)[0].split()
        for token in tokens[1:] if tokens and ":" not in tokens[0] else tokens:
            if not token.startswith("qid:") and not _is_pair(token):
                return BadInput(f"libsvm line {number}: {token[:40]!r} is not index:value with a whole index >= 0")
    return BadInput("libsvm body is not index:value pairs")


def decode(body: bytes) -> Any:
    """A libsvm body as a ``scipy.sparse.csr_matrix`` of float32; 400 naming a bad token.

    The numbers are parsed in one pass over the whole body by NumPy; only a body that fails it is
    walked token by token, to name the culprit.
    """
    import scipy.sparse

    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput("libsvm body is not UTF-8 text") from None
    rows, counts = _features(text)
    if not rows:
        raise BadInput("libsvm body holds no rows")
    tokens = " ".join(rows).replace(":", " ").split()
    try:
        pairs = np.array(tokens, dtype=np.float64)
    except ValueError:
        raise _bad_token(text) from None
    indices, values = pairs[0::2], pairs[1::2]
    if len(tokens) != 2 * sum(counts) or not np.all((indices >= 0) & (indices <= MAX_INDEX) & (indices == np.floor(indices))):
        raise _bad_token(text)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    width = int(indices.max()) + 1 if len(indices) else 0
    matrix = scipy.sparse.csr_matrix(
        (values.astype(np.float32), indices.astype(np.int32), indptr.astype(np.int64)), shape=(len(rows), width),
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
