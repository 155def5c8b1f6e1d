"""Framework handlers: one module per framework, all behind ``handlers.base.Framework``.

Adding a framework means adding one module (or package) to ``handlers/frameworks/`` and its name to
``FRAMEWORKS`` (docs/design.md, "Adding a framework"). The order of
``FRAMEWORKS`` is the order of detection: a more specific pattern comes before a looser one.
"""

import importlib
from pathlib import Path

from handlers.base import Framework, code_for, files_in
from handlers.errors import ModelLoadError

FRAMEWORKS = ("sklearn", "prophet", "xgboost", "pytorch", "onnx", "tensorflow")

# A file in the model directory whose text names the framework; it wins over detection.
MARKER_FILE = "FRAMEWORK"


# Serves models that only a user's model_fn can load; never chosen by file names.
FALLBACK = "python"


def get(name: str) -> Framework:
    """The framework called ``name``; importing its module does not import the framework."""
    if name not in FRAMEWORKS and name != FALLBACK:
        raise ModelLoadError(f"unknown framework {name!r}; known: {', '.join(FRAMEWORKS)}")
    framework: Framework = importlib.import_module(f"handlers.frameworks.{name}").FRAMEWORK
    return framework


def detect(model_dir: Path, explicit: str | None = None, program: str = "inference.py",
           shared_code: Path | None = None) -> tuple[Framework, Path | None]:
    """Which framework serves ``model_dir``, and the artifact it will load.

    The marker file, then ``explicit`` (MODEL_SERVER_FRAMEWORK), then the files themselves, then
    plain Python when only the user's ``code/<program>`` (or ``shared_code``'s, the fetched
    SAGEMAKER_SUBMIT_DIRECTORY) can load the model.
    """
    marker = model_dir / MARKER_FILE
    if marker.is_file():
        explicit = marker.read_text(errors="replace").strip().lower()
    if explicit:
        framework = get(explicit)
        return framework, framework.find(model_dir)
    for name in FRAMEWORKS:
        framework = get(name)
        artifact = framework.find(model_dir)
        if artifact is not None:
            return framework, artifact
    if code_for(model_dir, program, shared_code) is not None:
        return get(FALLBACK), None
    found = [p.name for p in files_in(model_dir)][:10] or ["no files"]
    expected = sorted({pattern for name in FRAMEWORKS for pattern in get(name).patterns})
    raise ModelLoadError(
        f"no framework recognises the model files ({', '.join(found)}); "
        f"expected one of: {', '.join(expected)}"
    )
