"""The architecture's import rules, checked on the source and in a running front.

- The front (every ``server`` module but the worker's own) never imports a framework, nor a
  ``handlers.frameworks`` module by name: it reaches handlers only through ``handlers.detect``
  and ``handlers.get``, whose modules must not import their framework at module level.
- Framework modules use the handlers core and never each other; the core never names them.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from harness.server import ROOT

FRAMEWORK_PACKAGES = {"torch", "torchvision", "tensorflow", "keras", "sklearn", "xgboost", "onnxruntime", "prophet",
                      "cmdstanpy", "pandas", "joblib", "skops", "onnx"}
WORKER_SIDE = {"worker.py", "acceleration.py"}  # the worker process; an offline diagnostic
CORE = ("base.py", "codecs.py", "context.py", "errors.py", "serving.py", "user_code.py", "__init__.py")


def imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def top(name: str) -> str:
    return name.split(".", 1)[0]


@pytest.mark.parametrize("path", sorted(p for p in (ROOT / "server").glob("*.py") if p.name not in WORKER_SIDE),
                         ids=lambda p: p.name)
def test_the_front_imports_no_framework(path):
    named = imports(path)
    assert not {top(name) for name in named} & FRAMEWORK_PACKAGES
    assert not [name for name in named if name.startswith("handlers.frameworks")]
    assert "handlers.serving" not in named and "handlers.user_code" not in named  # model code runs in workers only


@pytest.mark.parametrize("path", sorted((ROOT / "handlers" / "frameworks").glob("*.py")), ids=lambda p: p.name)
def test_framework_modules_use_the_core_not_each_other(path):
    named = imports(path)
    assert not [name for name in named if name.startswith("handlers.frameworks")]
    assert not [name for name in named if top(name) == "server"]


@pytest.mark.parametrize("name", CORE)
def test_the_core_never_names_a_framework_module(name):
    named = imports(ROOT / "handlers" / name)
    assert not [n for n in named if n.startswith("handlers.frameworks")]
    assert not [n for n in named if top(n) == "server"]


PROBE = r"""
import sys
from pathlib import Path
import handlers
from server.app import build_app
from server.config import Settings

root = Path(sys.argv[1])
made = {
    "sklearn": {"model.joblib": b"x"},
    "xgboost": {"xgboost-model": b"x"},
    "pytorch": {"model.pt": b"x"},
    "onnx": {"model.onnx": b"x"},
    "tensorflow": {"saved_model.pb": b"x"},
    "prophet": {"model.json": b'{"growth": "linear", "changepoint_range": 0.8, "seasonality_mode": "additive"}'},
}
for name, files in made.items():
    (root / name).mkdir()
    for file, content in files.items():
        (root / name / file).write_bytes(content)
    framework, _ = handlers.detect(root / name)
    assert framework.name == name, (name, framework.name)
build_app(Settings.from_env({"SAGEMAKER_MULTI_MODEL": "true"}))
print(" ".join(sorted({m.split(".")[0] for m in sys.modules})))
"""


def test_a_front_that_detected_every_framework_has_imported_none(tmp_path):
    done = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.split())
    assert "handlers" in loaded and "starlette" in loaded
    assert not loaded & FRAMEWORK_PACKAGES, loaded & FRAMEWORK_PACKAGES
