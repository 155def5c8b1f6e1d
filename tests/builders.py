"""Small real models made inside a test, for cases the example models do not cover."""

import io
import textwrap
from pathlib import Path

import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsRegressor

from models import data


def classifier():
    X, y = data.classification(seed=7)
    return LogisticRegression(max_iter=500).fit(X, y), X


def sklearn_model(directory: Path, code: str | None = None, requirements: str | None = None) -> Path:
    """A LogisticRegression on 4 features as ``model.joblib``, with optional ``code/inference.py``."""
    directory.mkdir(parents=True, exist_ok=True)
    model, _ = classifier()
    joblib.dump(model, directory / "model.joblib")
    if code is not None:
        (directory / "code").mkdir(exist_ok=True)
        (directory / "code" / "inference.py").write_text(textwrap.dedent(code))
    if requirements is not None:
        (directory / "code" / "requirements.txt").write_text(requirements)
    return directory


def knn_model(directory: Path, megabytes: int, seed: int = 0) -> Path:
    """A k-nearest-neighbours regressor on 10 features as ``model.joblib``: it keeps its training
    data, so its file and its memory are both about ``megabytes`` (a memory-hungry real model)."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(megabytes * 2**20 // 80, 10))
    joblib.dump(KNeighborsRegressor(n_neighbors=3, algorithm="brute").fit(X, X[:, 0]), directory / "model.joblib")
    return directory


# A predict_fn that sleeps for as many seconds as the first input value says, then predicts:
# a model whose requests are slow on demand, for timeouts, busy workers and crashes mid-request.
SLOW_CODE = """
import time

def predict_fn(data, model):
    delay = float(data[0][0])
    if delay >= 100:
        time.sleep(delay - 100)
    return model.predict(data)
"""


def rows(count: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(count, 4))


def npy(array) -> bytes:
    """An ``application/x-npy`` body."""
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


def npz(**arrays) -> bytes:
    """An ``application/x-npz`` body."""
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()
