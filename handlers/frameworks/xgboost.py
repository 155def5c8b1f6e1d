"""XGBoost: ``xgboost-model`` (JSON, UBJ or a pickled Booster), ``*.json``, ``*.ubj``, ``*.bst``.

``*.json`` is shared with other frameworks (Prophet's ``model.json``), so a JSON file counts only
when its first bytes look like an XGBoost model.

XGBoost 3 reads only JSON and UBJ. Files in the old binary format (what XGBoost before 1.0 and
the SageMaker XGBoost containers up to 1.x wrote, and what a pickled Booster of those versions
holds) fail to load with a message that says so and how to re-save them, rather than XGBoost's
own "Unknown construct" with its native stack trace.
"""

import pickle
import re
import struct
from pathlib import Path

from handlers.base import Framework, files_in
from handlers.batching import rows
from handlers.describe import native_check, short
from handlers.errors import BadInput, ModelLoadError

SUFFIXES = (".ubj", ".bst", ".model", ".xgb")


def _is_xgboost_json(path: Path) -> bool:
    with open(path, "rb") as file:
        head = file.read(256).lstrip()
    return head.startswith(b"{") and b'"learner"' in head


def find(model_dir: Path) -> Path | None:
    named = model_dir / "xgboost-model"
    if named.is_file():
        return named
    files = files_in(model_dir)
    for path in files:
        if path.suffix.lower() in SUFFIXES:
            return path
    for path in files:
        if path.suffix.lower() == ".json" and _is_xgboost_json(path):
            return path
    return None


# The old binary format: an optional "binf", a 136-byte LearnerModelParam (its major and minor
# version at bytes 20-28, zero before 1.0), then the objective's name as a length-prefixed string.
_LEGACY_PARAM = struct.Struct("<fIiiiII")
_LEGACY_PARAM_BYTES = 136
_LOG_PREFIX = re.compile(r"^\[[\d:]+\] \S+:\d+: ")  # XGBoost's "[10:50:22] json.cc:409: "
RESAVE = (
    "load it with the XGBoost version that wrote it (1.x or earlier) and re-save it as JSON or UBJ: "
    "booster.save_model('xgboost-model.json') or booster.save_model('xgboost-model.ubj')"
)


def legacy_version(raw: bytes) -> str | None:
    """``"before 1.0"`` or ``"1.7"`` when ``raw`` is an XGBoost model in the old binary format, else None."""
    if raw[:4] == b"binf":
        raw = raw[4:]
    if len(raw) < _LEGACY_PARAM_BYTES + 9 or raw.lstrip()[:1] == b"{":
        return None
    major, minor = _LEGACY_PARAM.unpack_from(raw)[5:7]
    (length,) = struct.unpack_from("<Q", raw, _LEGACY_PARAM_BYTES)
    objective = raw[_LEGACY_PARAM_BYTES + 8: _LEGACY_PARAM_BYTES + 8 + length]
    if not 0 < length < 64 or len(objective) != length or b":" not in objective or not objective.isascii():
        return None
    return f"{major}.{minor}" if 0 < major < 100 else "before 1.0"


def _unreadable(artifact: Path, raw: bytes, err: Exception) -> ModelLoadError:
    """The load failure to report: precise for the old binary format, XGBoost's reason (without
    its native frames) otherwise."""
    import xgboost

    pickled = " holds a Booster pickled by another XGBoost and" if raw[:1] == b"\x80" else ""
    version = legacy_version(raw)
    if version is not None or (pickled and isinstance(err, xgboost.core.XGBoostError)):
        written = f"XGBoost {version}" if version else "XGBoost before 2.0"
        return ModelLoadError(
            f"{artifact.name}{pickled} is in the legacy binary format (written by {written}), which XGBoost "
            f"{xgboost.__version__} cannot read; {RESAVE}", 500,
        )
    return ModelLoadError(
        f"{artifact.name} is not an XGBoost JSON, UBJ or pickled model that XGBoost {xgboost.__version__} can read: "
        f"{_LOG_PREFIX.sub('', short(err))}", 500,
    )


def load(artifact: Path):
    import xgboost

    raw = artifact.read_bytes()
    try:
        if raw[:1] == b"\x80":  # a Booster pickled by older SageMaker XGBoost containers
            model = pickle.loads(raw)
        else:
            # One thread to parse: a parallel load stalls whenever another process holds a core.
            model = xgboost.Booster(params={"nthread": 1})
            model.load_model(bytearray(raw))
    except (xgboost.core.XGBoostError, pickle.UnpicklingError, EOFError, ValueError) as err:
        raise _unreadable(artifact, raw, err) from None
    model.set_param({"nthread": _threads})
    return model


_threads = 1


def setup(threads: int, fpmath_mode: str | None = None) -> None:
    global _threads
    _threads = threads


def predict(model, data, context=None):
    import numpy as np
    import xgboost

    from handlers.codecs import libsvm
    from handlers.codecs.decode import as_rows

    expected = model.num_features() or None
    try:
        if isinstance(data, xgboost.DMatrix):  # what an input_fn written for the AWS XGBoost container returns
            return model.predict(data, validate_features=False)
        # Sparse input (libsvm, sparse RecordIO) stays sparse: absent entries are missing values, as in a DMatrix.
        rows = libsvm.widen(data, expected) if libsvm.is_sparse(data) else as_rows(data, expected).astype(np.float32, copy=False)
        # In-place prediction skips building a DMatrix, and is safe on several threads at once.
        return model.inplace_predict(rows, validate_features=False)
    except (ValueError, TypeError, xgboost.core.XGBoostError) as err:
        raise BadInput(f"the model cannot predict on this input: {native_check(err) or _LOG_PREFIX.sub('', short(err))}") from None


FRAMEWORK = Framework(
    name="xgboost",
    find=find,
    load=load,
    predict=predict,
    memory_factor=4.0,
    worker_bytes=150 * 2**20,
    imports=("xgboost",),
    setup=setup,
    patterns=("xgboost-model", "*.json (XGBoost)", "*.ubj", "*.bst"),
    batch=rows.BatchSpec(rows=lambda model, data, context: rows.table(data, model.num_features() or None)),
)
