"""A virtualenv of its own for each peer server, cached under ``benchmarks/.peers/`` (gitignored).

``ensure("mms")`` returns the venv of ``requirements/peers-mms.txt``: a full pin set installed
with ``--no-deps``, so it is the same on every machine and never pulls a CUDA build. The venv
is rebuilt only when its requirements file changes (its hash is kept in the venv), so only the
first run pays the minutes of installing TorchServe's torch or MLServer's stack.
"""

import hashlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "benchmarks" / ".peers"


def _base_python() -> str:
    """The interpreter the project's venv was made from (a venv of a venv would chain to it anyway)."""
    return getattr(sys, "_base_executable", sys.executable)


def ensure(name: str) -> Path:
    requirements = ROOT / "requirements" / f"peers-{name}.txt"
    venv = CACHE / "venvs" / name
    stamp = venv / ".requirements-sha256"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return venv
    print(f"[setup] installing {name} into {venv.relative_to(ROOT)} (once; cached)", flush=True)
    started = time.monotonic()
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([_base_python(), "-m", "venv", str(venv)], check=True)
    # sagemaker-inference is published as a source archive only; everything else must be a wheel.
    log = CACHE / "venvs" / f"{name}-install.log"
    with open(log, "wb") as out:
        done = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--no-deps",
                               "--only-binary=:all:", "--no-binary=sagemaker-inference", "-r", str(requirements)],
                              stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise RuntimeError(f"installing {name} failed; pip's output is in {log}")
    stamp.write_text(digest)
    print(f"[setup] {name} ready in {time.monotonic() - started:.0f}s", flush=True)
    return venv
