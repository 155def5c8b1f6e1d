"""The environment a worker starts with, and a probe set up like a worker (``server.diagnostics``).

Numeric libraries are held to the worker's share of cores, oneDNN's fpmath mode is given under
both of its names, and the project (with ``compat/``, the AWS containers' script modules that
user code imports) is on the child's path whatever the caller's working directory.
"""

import os
from collections.abc import Mapping

from server.shared.paths import PROJECT_ROOT

# oneDNN reads its default fpmath mode under two names; a worker gets both, set to one value.
FPMATH_VARIABLES = ("ONEDNN_DEFAULT_FPMATH_MODE", "DNNL_DEFAULT_FPMATH_MODE")


def fpmath_mode(environ: Mapping[str, str] | None = None) -> str | None:
    """The fpmath mode ``worker_environment`` gave this process (or ``environ``); None: oneDNN's own.

    A worker is told it in its ``WorkerConfig``; a probe set up like one (``server.diagnostics``)
    reads it here."""
    env = os.environ if environ is None else environ
    return env.get(FPMATH_VARIABLES[0]) or None


def worker_environment(intra_op_threads: int, fpmath_mode: str | None, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a worker: ours (or ``environ``), with numeric libraries held to their
    share of cores and oneDNN's fpmath mode (``Settings.fpmath_mode``) under both of its names."""
    env = dict(os.environ if environ is None else environ)
    threads = str(intra_op_threads)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
        env.setdefault(name, threads)
    env.setdefault("TF_NUM_INTEROP_THREADS", "1")  # requests already arrive on the worker's own threads
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow C++ INFO/WARNING start-up banners; errors still log
    if fpmath_mode is not None:
        env.update(dict.fromkeys(FPMATH_VARIABLES, fpmath_mode))
    return on_project_path(env)


def on_project_path(env: dict[str, str]) -> dict[str, str]:
    """``env`` with the project, and ``compat/`` (the AWS containers' script modules that user
    code imports), first on the child's PYTHONPATH: a child finds this checkout from anywhere."""
    ours = [str(PROJECT_ROOT), str(PROJECT_ROOT / "compat")]
    theirs = [part for part in env.get("PYTHONPATH", "").split(os.pathsep) if part and part not in ours]
    env["PYTHONPATH"] = os.pathsep.join(ours + theirs)
    return env
