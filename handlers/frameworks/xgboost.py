"""XGBoost: ``xgboost-model`` (binary, JSON, UBJ or a pickled Booster), ``*.json``, ``*.ubj``, ``*.bst``.

``*.json`` is shared with other frameworks (Prophet's ``model.json``), so a JSON file counts only
when its first bytes look like an XGBoost model.
"""

import pickle
from pathlib import Path

import numpy as np

from handlers.base import Framework, files_in
from handlers.codecs import as_rows
from handlers.errors import BadInput

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


def load(artifact: Path):
    import xgboost

    raw = artifact.read_bytes()
    if raw[:1] == b"\x80":  # a Booster pickled by older SageMaker XGBoost containers
        model = pickle.loads(raw)
    else:
        # One thread to parse: a parallel load stalls whenever another process holds a core.
        model = xgboost.Booster(params={"nthread": 1})
        model.load_model(bytearray(raw))
    model.set_param({"nthread": _threads})
    return model


_threads = 1


def setup(threads: int) -> None:
    global _threads
    _threads = threads


def predict(model, data, context=None):
    import xgboost

    rows = as_rows(data, model.num_features() or None)
    try:
        # In-place prediction skips building a DMatrix, and is safe on several threads at once.
        return model.inplace_predict(rows.astype(np.float32, copy=False), validate_features=False)
    except (ValueError, TypeError, xgboost.core.XGBoostError) as err:
        raise BadInput(f"the model cannot predict on this input: {err}") from None


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
)
