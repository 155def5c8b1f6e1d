"""scikit-learn: ``model.joblib``, ``*.pkl`` / ``*.joblib`` (joblib or pickle) and ``*.skops``.

Unlike the AWS scikit-learn container, no ``model_fn`` is demanded: the default files load as is.
"""

import importlib
import sys
from pathlib import Path

from handlers.base import Framework, first_match
from handlers.batching import rows
from handlers.errors import BadInput
from handlers.user_code import import_lock

SUFFIXES = (".joblib", ".pkl", ".pickle", ".skops")


def find(model_dir: Path) -> Path | None:
    return first_match(model_dir, ("model.joblib", "model.pkl", "model.skops"), SUFFIXES)


def _skops_io():
    """``skops.io``, imported without PyTorch.

    Importing it walks every scikit-learn module, and scikit-learn's array-API shim imports
    torch when it is installed (as it is in the image): 2 s and ~200 MB more in a worker that
    never uses it. Torch is hidden for the length of that import only, and only when nothing
    in the worker has imported it already.
    """
    if "skops.io" not in sys.modules:
        with import_lock:
            hide = "torch" not in sys.modules
            if hide:
                sys.modules["torch"] = None  # makes ``import torch`` raise ImportError
            try:
                importlib.import_module("skops.io")
            finally:
                if hide:
                    del sys.modules["torch"]
    return sys.modules["skops.io"]


def load(artifact: Path):
    if artifact.suffix.lower() == ".skops":
        skops_io = _skops_io()
        # The archive is the model owner's own; trust the types it names, as joblib would.
        return skops_io.load(artifact, trusted=skops_io.get_untrusted_types(file=artifact))
    import joblib

    return joblib.load(artifact)


def predict(model, data, context=None):
    """``predict``; for a transformer (a preprocessing step of a pipeline), ``transform``.
    Sparse input (libsvm, sparse RecordIO) is made dense: not every estimator takes sparse rows."""
    from handlers.codecs import libsvm
    from handlers.codecs.decode import as_rows

    expected = getattr(model, "n_features_in_", None)
    rows = as_rows(libsvm.dense(data, expected), expected)
    method = model.predict if hasattr(model, "predict") else model.transform
    try:
        return method(rows)
    except (ValueError, TypeError) as err:
        raise BadInput(f"the model cannot predict on this input: {err}") from None


FRAMEWORK = Framework(
    name="sklearn",
    find=find,
    load=load,
    predict=predict,
    memory_factor=3.0,
    worker_bytes=120 * 2**20,
    # The estimator families most models are made of, imported with the framework rather than
    # by the first model's unpickling (LogisticRegression's: 90 ms of the first LoadModel); they
    # add about 18 MB and 0.1 s to the worker's start, which a standby has already paid.
    imports=("sklearn", "joblib", "sklearn.linear_model", "sklearn.pipeline", "sklearn.preprocessing",
             "sklearn.ensemble", "sklearn.tree"),
    patterns=("model.joblib", "*.pkl", "*.skops"),
    # Rows are predicted independently: requests of the same width and dtype merge.
    batch=rows.BatchSpec(rows=lambda model, data, context: rows.table(data, getattr(model, "n_features_in_", None))),
)
