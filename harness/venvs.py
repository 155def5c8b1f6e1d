"""Virtualenvs of their own for tools that cannot share the dev venv, made from a full pin set.

``ensure(requirements, venv)`` returns ``venv`` with exactly ``requirements`` installed
(``--no-deps``, wheels only unless ``no_binary`` names a source-only package), so it is the same
on every machine and never pulls a CUDA build or a newer dependency. The venv is rebuilt only when
its requirements file changes (its hash is kept in the venv), so only the first run pays the
install. Used by the peers benchmark (``benchmarks/peer_venvs.py``) and the SageMaker Python SDK
tier (``tests/sdk/``); the caches live in gitignored folders of the callers' choosing.
"""

import hashlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def base_python() -> str:
    """The interpreter the project's venv was made from (a venv of a venv would chain to it anyway)."""
    return getattr(sys, "_base_executable", sys.executable)


def python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure(requirements: Path, venv: Path, no_binary: tuple[str, ...] = ()) -> Path:
    """``venv`` holding ``requirements`` (made, or remade when the file changed); raises with pip's log on failure."""
    stamp = venv / ".requirements-sha256"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return venv
    shown = venv.relative_to(ROOT) if venv.is_relative_to(ROOT) else venv
    print(f"[setup] installing {requirements.name} into {shown} (once; cached)", flush=True)
    started = time.monotonic()
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([base_python(), "-m", "venv", str(venv)], check=True)
    log = venv.parent / f"{venv.name}-install.log"
    binary = ["--only-binary=:all:", *(f"--no-binary={name}" for name in no_binary)]
    with open(log, "wb") as out:
        done = subprocess.run([str(python(venv)), "-m", "pip", "install", "--no-deps", *binary, "-r", str(requirements)],
                              stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise RuntimeError(f"installing {requirements.name} failed; pip's output is in {log}")
    stamp.write_text(digest)
    print(f"[setup] {venv.name} ready in {time.monotonic() - started:.0f}s", flush=True)
    return venv
