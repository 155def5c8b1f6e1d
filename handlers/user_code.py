"""Users' ``code/inference.py``: the hooks of the AWS framework containers, on any framework.

``model_fn``, ``input_fn``, ``predict_fn``, ``output_fn`` and ``transform_fn``, each optional,
each with or without a trailing ``context`` (told apart by arity). Whatever the user leaves out
comes from the framework handler (``handlers.serving`` puts the two together). Each model's code is imported under a module name of its own,
and the sibling modules it imports are taken out of ``sys.modules`` again, so two models whose
``inference.py`` (or ``utils.py``) differ never see each other's. ``code/requirements.txt`` is
installed at load into a directory keyed by its content, shared by models that ask the same.
"""

import hashlib
import importlib.util
import inspect
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from handlers.base import code_dir
from handlers.codecs import media as codecs
from handlers.context import Context
from handlers.describe import USER_MODULE_PREFIX
from handlers.errors import ModelLoadError, ServingError
from handlers.lifetime import die_with_parent

log = logging.getLogger("user_code")
Hook = Callable[..., Any]  # a user hook wrapped to take the context first

HOOKS = ("model_fn", "input_fn", "predict_fn", "output_fn", "transform_fn")
TEXT_TYPES = (codecs.JSON, codecs.CSV)  # bodies handed to input_fn as str, like the AWS toolkits
import_lock = threading.Lock()  # sys.path and sys.modules are process-wide: one import juggles them at a time


def install_requirements(model_dir: Path, packages_root: Path, code: Path | None = None) -> Path | None:
    """Install ``code/requirements.txt`` (or ``code``'s) into ``packages_root/<sha256>``; cached by content."""
    requirements = (code or code_dir(model_dir)) / "requirements.txt"
    if not requirements.is_file():
        return None
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:24]
    target = packages_root / digest
    if (target / ".complete").is_file():
        return target
    partial = packages_root / f"{digest}.partial-{os.getpid()}-{threading.get_ident()}"
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input",
        "--target", str(partial), "-r", str(requirements),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, preexec_fn=die_with_parent)
    if result.returncode != 0:
        lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
        reason = next((line for line in reversed(lines) if "ERROR" in line), lines[-1] if lines else "pip failed")
        log.error("pip install of %s failed:\n%s", requirements, result.stderr)
        raise ModelLoadError(f"installing code/requirements.txt failed: {reason}", 500)
    (partial / ".complete").touch()
    try:
        partial.rename(target)
    except OSError:  # another load installed the same set first
        pass
    return target


def import_user_module(model_dir: Path, program: str, packages: Path | None, code: Path | None = None) -> ModuleType:
    """Import ``code/<program>`` (or ``code``'s) under a name of its own for ``model_dir``, isolated
    from other models' code, even from other models served by the same ``code``."""
    code = code or code_dir(model_dir)
    path = code / program
    name = USER_MODULE_PREFIX + hashlib.sha256(str(model_dir).encode()).hexdigest()[:16]
    with import_lock:
        before = set(sys.modules)
        extra = [str(code)] + ([str(packages)] if packages else [])
        sys.path[:0] = extra
        try:
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise ModelLoadError(f"code/{program} cannot be imported")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        finally:
            del sys.path[: len(extra)]
            if packages and str(packages) not in sys.path:
                sys.path.append(str(packages))  # for imports the hooks make later, at request time
            code_root = str(code)
            for added in set(sys.modules) - before:
                origin = getattr(sys.modules[added], "__file__", None) or ""
                if origin.startswith(code_root):
                    del sys.modules[added]
    return module


def _with_context(fn: Callable[..., Any]) -> Hook:
    """Call ``fn`` with or without the trailing context, as its signature asks."""
    try:
        parameters = [
            p for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        return lambda context, *args: fn(*args)
    positional = len(parameters)
    return lambda context, *args: fn(*args, context) if positional > len(args) else fn(*args)


def _response_type(accept: str | None, context: Context) -> str:
    """The content type of a hook's bare output: the first concrete type asked for, else the default."""
    for item in (accept or "").split(","):
        kind = codecs.media_type(item)
        if kind and "*" not in kind:
            return kind
    return context.default_accept


def as_response(result: Any, accept: str | None, context: Context, hook: str) -> tuple[bytes, str]:
    """The body and content type of what ``hook`` returned (``body`` or ``(body, content_type)``).

    Checked here, while the failure is still this request's own: a wrong type found later, as
    the worker serialises its reply, would take the other requests of its group with it.
    """
    if isinstance(result, tuple) and len(result) == 2:
        body, content_type = result
    else:
        body, content_type = result, _response_type(accept, context)
    if isinstance(body, str):
        body = body.encode()
    elif not isinstance(body, (bytes, bytearray, memoryview)):
        raise ServingError(f"{hook} returned {type(body).__name__}; it must return bytes or str")
    if not isinstance(content_type, str):
        raise ServingError(f"{hook} returned a content type of type {type(content_type).__name__}; expected str")
    return bytes(body), str.__str__(content_type)


@dataclass(frozen=True)
class UserHooks:
    """The hooks a model's ``code/<program>`` defines, each wrapped to take the context first;
    None for each it leaves out (the framework's own step serves then)."""

    model_fn: Hook | None = None
    input_fn: Hook | None = None
    predict_fn: Hook | None = None
    output_fn: Hook | None = None
    transform_fn: Hook | None = None
    # ``batchable = True`` in the module: its predict_fn may be given several requests' rows at once.
    batchable: bool = False


def find_hooks(module: ModuleType | None) -> UserHooks:
    """The hooks of a user module (None: no user code)."""
    found = {hook: getattr(module, hook) for hook in HOOKS if callable(getattr(module, hook, None))}
    if "transform_fn" in found and {"input_fn", "predict_fn", "output_fn"} & set(found):
        raise ModelLoadError(
            "code/inference.py defines transform_fn together with input_fn, predict_fn or output_fn; "
            "define transform_fn alone or the other three"
        )
    hooks = {hook: _with_context(fn) for hook, fn in found.items()}
    return UserHooks(**hooks, batchable=getattr(module, "batchable", False) is True)


def body_for_user(body: bytes, content_type: str | None) -> str | bytes:
    """JSON and CSV bodies reach ``input_fn``/``transform_fn`` as text, like the AWS toolkits."""
    if codecs.media_type(content_type) in TEXT_TYPES:
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            return body
    return body
