"""Plain Python: a model that only the user's ``model_fn`` knows how to load.

Chosen when no framework recognises the files but ``code/inference.py`` is there (or when the
marker file says ``python``). The default predict calls ``model.predict(data)``, else ``model(data)``.
"""

from pathlib import Path

from handlers.base import Framework
from handlers.errors import ModelLoadError


def find(model_dir: Path) -> Path | None:
    return None  # never by its files: only as the fallback for user code


def load(artifact: Path):
    raise ModelLoadError("this model has no files a framework recognises; code/inference.py must define model_fn")


def predict(model, data, context=None):
    if hasattr(model, "predict"):
        return model.predict(data)
    if callable(model):
        return model(data)
    raise ModelLoadError("model_fn returned an object with no predict method; define predict_fn", 500)


FRAMEWORK = Framework(
    name="python",
    find=find,
    load=load,
    predict=predict,
    memory_factor=3.0,
    worker_bytes=60 * 2**20,
    patterns=("code/inference.py with model_fn",),
)
