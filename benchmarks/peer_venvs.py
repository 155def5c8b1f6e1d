"""A virtualenv of its own for each peer server, cached under ``benchmarks/.peers/`` (gitignored).

``ensure("mms")`` returns the venv of ``requirements/peers-mms.txt``, made by ``harness.venvs``:
a full pin set installed with ``--no-deps``, rebuilt only when the file changes, so only the
first run pays the minutes of installing TorchServe's torch or MLServer's stack.
"""

from pathlib import Path

from harness import venvs

ROOT = venvs.ROOT
CACHE = ROOT / "benchmarks" / ".peers"


def ensure(name: str) -> Path:
    # sagemaker-inference is published as a source archive only; everything else must be a wheel.
    return venvs.ensure(ROOT / "requirements" / f"peers-{name}.txt", CACHE / "venvs" / name,
                        no_binary=("sagemaker-inference",))
