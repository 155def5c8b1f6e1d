"""The one small interface every framework implements.

A handler module builds one ``Framework`` and names it ``FRAMEWORK``. The front imports handler
modules only to call ``find``, which looks at file names (and at most peeks at a file's first
bytes): a handler module must not import its framework at module level, so that the front stays
small and a framework's import is paid once, in the worker that serves it. Nor may it import
NumPy at module level: what needs it is imported in the worker, at first use
(``handlers.deferred``).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from handlers.batching.rows import BatchSpec
from handlers.codecs.media import negotiate
from handlers.context import Context
from handlers.deferred import deferred
from handlers.errors import ModelLoadError

_decode = deferred("handlers.codecs.decode", "decode")
_encode = deferred("handlers.codecs.encode", "encode")
_encode_outputs = deferred("handlers.codecs.encode", "encode_outputs")

# Where a model directory keeps its own inference code (``code/inference.py``, SAGEMAKER_PROGRAM).
CODE_DIR = "code"


def default_decode(body: bytes, content_type: str | None, context: Context) -> Any:
    return _decode(body, content_type)


def default_encode(prediction: Any, accept: str | None, context: Context) -> tuple[bytes, str]:
    kind = negotiate(accept, context.default_accept)
    return _encode(prediction, kind), kind


def outputs_encode(prediction: Any, accept: str | None, context: Context) -> tuple[bytes, str]:
    """The encoder of networks that may answer several outputs (ONNX, PyTorch): see
    ``handlers.codecs.encode.encode_outputs``."""
    kind = negotiate(accept, context.default_accept)
    return _encode_outputs(prediction, kind), kind


@dataclass(frozen=True)
class Framework:
    """What the server needs to know about one framework."""

    name: str
    # Model directory -> the artifact to load, or None when this framework does not recognise it.
    find: Callable[[Path], Path | None]
    # Artifact path -> in-memory model. Runs in the framework's worker process.
    load: Callable[[Path], Any]
    # (model, decoded input, context) -> prediction. Runs in the worker, often on several threads at once.
    predict: Callable[[Any, Any, Context], Any]
    # (body, content type, context) -> input for predict.
    decode: Callable[[bytes, str | None, Context], Any] = default_decode
    # (prediction, Accept header, context) -> (body, content type).
    encode: Callable[[Any, str | None, Context], tuple[bytes, str]] = default_encode
    # Rough in-memory size of a loaded model per byte on disk, for the memory budget (507).
    memory_factor: float = 3.0
    # Rough memory of a fresh worker process once the framework is imported.
    worker_bytes: int = 150 * 2**20
    # File patterns shown to a user whose directory matched no framework.
    patterns: tuple[str, ...] = field(default=())
    # Modules the worker imports once at start, so every model of the framework shares them.
    imports: tuple[str, ...] = field(default=())
    # Called once in the worker after the imports with its intra-op thread count, so that the
    # framework's thread pools together use each core once, and oneDNN's fpmath mode
    # (``WorkerConfig.fpmath_mode``: "BF16" asks for bf16 fast math; None is oneDNN's own, STRICT).
    setup: Callable[[int, str | None], None] | None = None
    # How concurrent requests merge into one predict call (``handlers.batching``); None: they never do.
    batch: BatchSpec | None = None


def code_dir(model_dir: Path) -> Path:
    return model_dir / CODE_DIR


def code_for(model_dir: Path, program: str, shared: Path | None = None) -> Path | None:
    """The directory of the code serving ``model_dir``: its own ``code/`` when that holds
    ``program``, else ``shared`` (SAGEMAKER_SUBMIT_DIRECTORY, fetched) when that does, else None."""
    if (code_dir(model_dir) / program).is_file():
        return code_dir(model_dir)
    return shared if shared is not None and (shared / program).is_file() else None


def files_in(model_dir: Path) -> list[Path]:
    """The regular files directly inside ``model_dir`` (not ``code/``), sorted by name."""
    return sorted(p for p in model_dir.iterdir() if p.is_file())


def first_match(model_dir: Path, names: tuple[str, ...], suffixes: tuple[str, ...]) -> Path | None:
    """The file named like one of ``names``, else the first file with one of ``suffixes``."""
    for name in names:
        candidate = model_dir / name
        if candidate.is_file():
            return candidate
    for path in files_in(model_dir):
        if path.suffix.lower() in suffixes:
            return path
    return None


def single_file(model_dir: Path, named: str, suffixes: tuple[str, ...], what: str) -> Path | None:
    """``named`` if present, else the one file with one of ``suffixes``; several is the user's
    ambiguity to resolve, so it is refused rather than guessed."""
    candidate = model_dir / named
    if candidate.is_file():
        return candidate
    candidates = [p for p in files_in(model_dir) if p.suffix.lower() in suffixes]
    if len(candidates) > 1:
        names = ", ".join(p.name for p in candidates[:5])
        raise ModelLoadError(f"several {what} files ({names}) and no {named}: name the one to serve {named}")
    return candidates[0] if candidates else None
