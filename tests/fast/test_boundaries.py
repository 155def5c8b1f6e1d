"""The architecture's import rules, by folder, checked on the source and in a running front.

Which process runs a module is told by its folder (``server/__init__.py``), and these rules keep
it true:

- the front (``server/front/``, ``server/config.py``, ``server/__main__.py``) and what both
  processes share (``server/shared/``) never import a framework, numpy, model code
  (``handlers.frameworks``, ``handlers.serving``, ``handlers.user_code``) or the worker;
- ``server/shared/`` imports nothing else of ``server``, so neither side pulls in the other;
- the worker (``server/worker/``) and the offline diagnostic (``server/diagnostics/``) never
  import the front;
- framework modules use the handlers core and never each other (a framework that is a package,
  ``handlers/frameworks/tensorflow/``, imports its own modules); the core never names them, and
  no handler imports ``server``.

Every module of ``server`` and ``handlers`` is in exactly one of these folders' rules: a new
file is checked the day it is added, by where it lies.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from harness.server import ROOT

FRAMEWORK_PACKAGES = {"torch", "torchvision", "tensorflow", "keras", "sklearn", "xgboost", "onnxruntime", "prophet",
                      "cmdstanpy", "pandas", "joblib", "skops", "onnx"}
NOT_IN_THE_FRONT = FRAMEWORK_PACKAGES | {"numpy", "scipy"}
MODEL_CODE = ("handlers.frameworks", "handlers.serving", "handlers.user_code", "handlers.batching", "handlers.tfs_hooks",
              "handlers.tfs_rest")
SERVER = ROOT / "server"


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


def under(name: str, *packages: str) -> bool:
    return any(name == package or name.startswith(package + ".") for package in packages)


def modules(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (ROOT / folder).rglob("*.py"))


def ids(path: Path) -> str:
    return str(path.relative_to(ROOT))


FRONT = modules("server/front") + [SERVER / "config.py", SERVER / "__main__.py", SERVER / "__init__.py"]
SHARED = modules("server/shared")
WORKER = modules("server/worker")
DIAGNOSTICS = modules("server/diagnostics")
FRAMEWORK_MODULES = modules("handlers/frameworks")
CORE = [path for path in modules("handlers") if path not in FRAMEWORK_MODULES]


def test_every_server_module_lies_in_a_folder_with_rules():
    ruled = set(FRONT + SHARED + WORKER + DIAGNOSTICS)
    assert set(modules("server")) == ruled, sorted(map(ids, set(modules("server")) - ruled))


@pytest.mark.parametrize("path", FRONT + SHARED, ids=ids)
def test_the_front_and_the_shared_code_import_no_framework_numpy_or_model_code(path):
    named = imports(path)
    assert not {top(name) for name in named} & NOT_IN_THE_FRONT
    assert not [name for name in named if under(name, *MODEL_CODE)]
    assert not [name for name in named if under(name, "server.worker")]
    if path != SERVER / "__main__.py":  # the CLI's accel-report command runs the diagnostic, lazily
        assert not [name for name in named if under(name, "server.diagnostics")]


@pytest.mark.parametrize("path", SHARED, ids=ids)
def test_the_shared_code_imports_nothing_else_of_the_server(path):
    assert not [name for name in imports(path) if top(name) == "server" and not under(name, "server.shared")]


@pytest.mark.parametrize("path", WORKER + DIAGNOSTICS, ids=ids)
def test_the_worker_and_the_diagnostic_never_import_the_front(path):
    assert not [name for name in imports(path) if under(name, "server.front")]


def framework_of(path: Path) -> str:
    """``handlers.frameworks.<name>``: the framework a module of ``handlers/frameworks/`` belongs to
    (a module of its own, or a package of modules)."""
    return "handlers.frameworks." + path.relative_to(ROOT / "handlers" / "frameworks").parts[0].removesuffix(".py")


@pytest.mark.parametrize("path", FRAMEWORK_MODULES, ids=ids)
def test_framework_modules_use_the_core_not_each_other(path):
    named = imports(path)
    own = framework_of(path)
    assert not [name for name in named if under(name, "handlers.frameworks") and not under(name, own)]
    assert not [name for name in named if top(name) == "server"]


@pytest.mark.parametrize("path", CORE, ids=ids)
def test_the_core_never_names_a_framework_module_nor_the_server(path):
    named = imports(path)
    assert not [n for n in named if n.startswith("handlers.frameworks")]
    assert not [n for n in named if top(n) == "server"]


PROBE = r"""
import sys
from pathlib import Path
import handlers
from server.front.http.app import build_app
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


def test_a_front_that_detected_every_framework_has_imported_none_nor_numpy(tmp_path):
    done = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.split())
    assert "handlers" in loaded and "starlette" in loaded
    assert not loaded & NOT_IN_THE_FRONT, loaded & NOT_IN_THE_FRONT
