"""``text/libsvm`` (and ``text/x-libsvm``) request bodies, as the AWS XGBoost container takes them.

One row a line: ``[label] index:value index:value ...``. Indices are counted as XGBoost's own
libsvm reader counts them, which is how the AWS XGBoost container reads a body (it writes it to a
file and loads ``xgb.DMatrix(file)``): zero-based unless told otherwise, so a model trained on
``1:x 2:y`` files has a column 0 that stays empty. A Content-Type parameter tells otherwise, with
the name and values of the reader's own URI parameter: ``text/libsvm; indexing_mode=1`` reads
the indices one-based (libsvm's own convention), ``indexing_mode=-1`` one-based when no index 0
appears in the body (the reader's heuristic, which is scikit-learn's ``zero_based="auto"``),
``indexing_mode=0`` zero-based (the default).

The label, ``qid:`` tokens and ``# comments`` are ignored: at inference only the features count.
A body decodes to a SciPy CSR matrix as wide as its largest index; ``dense`` and ``widen`` give
frameworks the width their model expects (XGBoost predicts on the sparse matrix, scikit-learn
on a dense array).
"""

from typing import Any

import numpy as np

from handlers.codecs.media import LIBSVM
from handlers.errors import BadInput

MAX_INDEX = 2**31 - 2
PARAMETER = "indexing_mode"
ZERO_BASED = 0  # what XGBoost's reader assumes without the parameter
_ONE_BASED_HINT = (f"; no index 0 appears: if this is a libsvm body with one-based indices (libsvm's own convention), "
                   f"send Content-Type: {LIBSVM}; {PARAMETER}=1")


def indexing_mode(content_type: str | None) -> int:
    """The ``indexing_mode`` parameter of a Content-Type as XGBoost's reader takes it (above 0:
    one-based, 0: zero-based, below 0: detect), 0 when absent; 400 when it is not a whole number."""
    for parameter in (content_type or "").split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == PARAMETER:
            value = value.strip().strip('"')
            try:
                return int(value)
            except ValueError:
                raise BadInput(f"Content-Type parameter {PARAMETER}={value[:20]!r} is not a whole number: "
                               f"0 (zero-based, the default), 1 (one-based) or -1 (one-based when no index 0 appears)") from None
    return ZERO_BASED


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


def _first_zero(text: str) -> int:
    """The number of the first line using index 0 (of a body known to use it)."""
    for number, line in enumerate(text.splitlines(), start=1):
        tokens = line.split("#", 1)[0].split()
        if any(token.partition(":")[0].isdigit() and int(token.partition(":")[0]) == 0 for token in tokens if ":" in token):
            return number
    return 0


def decode(body: bytes, content_type: str | None = None) -> Any:
    """A libsvm body as a ``scipy.sparse.csr_matrix`` of float32, its indices counted as the
    Content-Type's ``indexing_mode`` says; 400 naming a bad token.

    The numbers are parsed in one pass over the whole body by NumPy; only a body that fails it is
    walked token by token, to name the culprit.
    """
    mode = indexing_mode(content_type)
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
    if len(indices) and (mode > 0 or (mode < 0 and indices.min() > 0)):
        if indices.min() == 0:
            raise BadInput(f"libsvm line {_first_zero(text)} uses index 0, and {PARAMETER}={mode} reads indices "
                           "one-based (from 1): send 0 to read them zero-based, -1 to detect")
        indices = indices - 1
    indptr = np.concatenate([[0], np.cumsum(counts)])
    width = int(indices.max()) + 1 if len(indices) else 0
    matrix = scipy.sparse.csr_matrix(
        (values.astype(np.float32), indices.astype(np.int32), indptr.astype(np.int64)), shape=(len(rows), width),
    )
    return matrix if matrix.has_canonical_format else _last_wins(matrix)


def _last_wins(matrix: Any) -> Any:
    """``matrix`` with each row's columns sorted and an index given twice in a row holding the
    value written last: XGBoost's reader keeps both entries, and its prediction sees the last."""
    import scipy.sparse

    rows = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
    keys = rows * max(matrix.shape[1], 1) + matrix.indices
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    last = np.append(keys[1:] != keys[:-1], True)
    kept = order[last]
    return scipy.sparse.csr_matrix((matrix.data[kept], (rows[kept], matrix.indices[kept])), shape=matrix.shape)


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
        hint = _ONE_BASED_HINT if matrix.nnz and matrix.indices.min() > 0 and matrix.shape[1] == expected + 1 else ""
        raise BadInput(f"input uses feature index {matrix.shape[1] - 1}; the model has {expected} features "
                       f"(0 to {expected - 1}){hint}")
    matrix = matrix.copy()
    matrix.resize((matrix.shape[0], expected))
    return matrix


def dense(data: Any, expected: int | None) -> Any:
    """``data`` as a dense array ``expected`` wide when it is sparse; anything else as it is."""
    return widen(data, expected).toarray() if is_sparse(data) else data
