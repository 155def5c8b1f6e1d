"""The acceleration report: what math each framework really does on this CPU.

``python -m server accel-report`` prints, as JSON, per framework (PyTorch, TensorFlow, ONNX
Runtime; XGBoost and scikit-learn by version only): its version, the architecture, whether the
CPU has bf16 instructions, whether oneDNN and the Arm Compute Library are there, the fpmath mode
in force, the GEMM kernel oneDNN picks, and a numeric fingerprint; then a verdict on whether BF16
fast-math is active. With ``MODEL_SERVER_ACCEL_REPORT=true`` (the images' default) the server
logs the same report as one line at start.

Why a fingerprint: ``DNNL_DEFAULT_FPMATH_MODE=BF16`` puts ``attr-fpmath:bf16`` on oneDNN's
kernels on any CPU, also where no bf16 arithmetic happens (x86 without AVX512-BF16/AMX, Graviton2).
The error of an fp32 matmul against float64 tells: about 1e-7 is fp32 arithmetic, about 1e-3 is
bf16 (8 significant bits instead of 24).

Each framework is probed in a child process (``python -m server.acceleration probe NAME FILE``)
with ``ONEDNN_VERBOSE=1`` and the environment the workers get, so that nothing heavy is imported
by the caller and oneDNN's verbose lines, printed on the child's stdout, can be read back.
"""

import asyncio
import json
import os
import platform
import re
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROBED = ("torch", "tensorflow", "onnxruntime")
VERSION_ONLY = {"xgboost": ("xgboost-cpu", "xgboost"), "scikit-learn": ("scikit-learn",)}
SIZE = 256  # matmul size of the probes: big enough for oneDNN/ACL/MLAS to take their GEMM paths
BF16_ERROR = 1e-4  # fingerprint above this: reduced-precision arithmetic (bf16 ~1e-3, fp32 ~1e-7)
PROBE_TIMEOUT = 240.0

# ------------------------------------------------------------------------------------------ CPU

AT_HWCAP, AT_HWCAP2 = 16, 26
HWCAP_SVE = 1 << 22
HWCAP2_SVE2, HWCAP2_SVEBF16, HWCAP2_I8MM, HWCAP2_BF16 = 1 << 1, 1 << 12, 1 << 13, 1 << 14
ARM_PARTS = {  # /proc/cpuinfo "CPU part" of the Neoverse cores behind Graviton
    "0xd0c": "Neoverse-N1 (Graviton2)",
    "0xd40": "Neoverse-V1 (Graviton3)",
    "0xd4f": "Neoverse-V2 (Graviton4)",
}
X86_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")


def parse_auxv(data: bytes) -> dict[int, int]:
    """The (type -> value) pairs of a ``/proc/self/auxv`` image (native unsigned longs)."""
    entries = {}
    size = struct.calcsize("@LL")
    for kind, value in struct.iter_unpack("@LL", data[: len(data) - len(data) % size]):
        if kind == 0:  # AT_NULL
            break
        entries[kind] = value
    return entries


def read_auxv() -> dict[int, int]:
    try:
        return parse_auxv(Path("/proc/self/auxv").read_bytes())
    except OSError:
        pass
    try:  # getauxval(3) where /proc is not mounted
        import ctypes

        getauxval = ctypes.CDLL(None).getauxval
        getauxval.restype = ctypes.c_ulong
        return {kind: getauxval(kind) for kind in (AT_HWCAP, AT_HWCAP2)}
    except (OSError, AttributeError):
        return {}


def cpu_features(machine: str | None = None, cpuinfo: str | None = None, auxv: dict | None = None) -> dict:
    """Architecture and bf16 support: HWCAP2_BF16 on arm64, AVX512-BF16 or AMX-BF16 on x86."""
    machine = (machine or platform.machine()).lower()
    machine = {"arm64": "aarch64", "amd64": "x86_64"}.get(machine, machine)
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            cpuinfo = ""
    fields = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    if machine == "aarch64":
        auxv = read_auxv() if auxv is None else auxv
        hwcap, hwcap2 = auxv.get(AT_HWCAP, 0), auxv.get(AT_HWCAP2, 0)
        named = {"sve": hwcap & HWCAP_SVE, "sve2": hwcap2 & HWCAP2_SVE2, "bf16": hwcap2 & HWCAP2_BF16,
                 "svebf16": hwcap2 & HWCAP2_SVEBF16, "i8mm": hwcap2 & HWCAP2_I8MM}
        part = fields.get("CPU part", "").lower()
        return {
            "architecture": machine,
            "model": ARM_PARTS.get(part, f"CPU part {part}" if part else "unknown"),
            "bf16": bool(hwcap2 & HWCAP2_BF16),
            "features": [name for name, bit in named.items() if bit],
            "source": "AT_HWCAP/AT_HWCAP2" if auxv else "unavailable",
        }
    flags = set(fields.get("flags", "").split())
    return {
        "architecture": machine,
        "model": fields.get("model name", "unknown"),
        "bf16": bool(flags & {"avx512_bf16", "amx_bf16"}),
        "features": [flag for flag in X86_FLAGS if flag in flags],
        "source": "/proc/cpuinfo flags" if flags else "unavailable",
    }


# ------------------------------------------------------------------------------ oneDNN verbose

GEMM_PRIMITIVES = ("matmul", "inner_product", "gemm_api")


def parse_verbose(lines) -> list[dict]:
    """The primitive executions in oneDNN verbose output (``ONEDNN_VERBOSE=1``).

    Takes the formats of oneDNN 2.x and 3.x: ``onednn_verbose[,v1][,timestamp][,primitive],exec,
    engine,primitive,implementation,prop_kind,memory descriptors,attributes,auxiliary,problem,time``
    (also ``dnnl_verbose``). Creation, info and graph-API lines are skipped.
    """
    records = []
    for line in lines:
        line = line.strip()
        if not line.startswith(("onednn_verbose,", "dnnl_verbose,")):
            continue
        fields = line.split(",")
        if "exec" not in fields:
            continue
        at = fields.index("exec")
        if fields[at - 1] == "graph" or len(fields) < at + 7:
            continue
        engine, kind, implementation, prop_kind, descriptors, attributes = fields[at + 1 : at + 7]
        fpmath = re.search(r"attr-fpmath:(\w+)", attributes)
        source = re.search(r"\bsrc[_:]([a-z0-9]+)", descriptors)
        try:
            milliseconds = float(fields[-1])
        except ValueError:
            milliseconds = None
        records.append({
            "engine": engine,
            "primitive": kind,
            "implementation": implementation,
            "prop_kind": prop_kind,
            "src_type": source.group(1) if source else None,
            "fpmath": fpmath.group(1) if fpmath else None,
            "problem": fields[-2] if len(fields) > at + 8 else "",
            "ms": milliseconds,
        })
    return records


def gemm_kernel(records: list[dict]) -> str | None:
    """The implementation oneDNN ran matrix products on most often (``gemm:acl``, ``brg:avx2``,
    ``jit:avx2``, ``ref:any``...); ``gemm_api`` for its sgemm API, which names none."""
    counts = Counter(r["implementation"] or r["primitive"] for r in records if r["primitive"] in GEMM_PRIMITIVES)
    return counts.most_common(1)[0][0] if counts else None


def fpmath_attribute(records: list[dict]) -> str | None:
    """The fpmath attribute on oneDNN's matrix products, if any carried one."""
    modes = Counter(r["fpmath"] for r in records if r["primitive"] in GEMM_PRIMITIVES and r["fpmath"])
    return modes.most_common(1)[0][0] if modes else None


# ----------------------------------------------------------------------- probes (child process)


def fingerprint(product, rng, b=None) -> float:
    """Max error of ``product(a, b)`` on fp32 matrices, relative to the largest float64 result."""
    import numpy as np

    a = rng.standard_normal((SIZE, SIZE)).astype(np.float32)
    b = rng.standard_normal((SIZE, SIZE)).astype(np.float32) if b is None else b
    exact = a.astype(np.float64) @ b.astype(np.float64)
    got = np.asarray(product(a, b), dtype=np.float64)
    return float(np.max(np.abs(got - exact)) / np.max(np.abs(exact)))


def _env_fpmath() -> str:
    return (os.environ.get("ONEDNN_DEFAULT_FPMATH_MODE") or os.environ.get("DNNL_DEFAULT_FPMATH_MODE")
            or "STRICT").strip().upper()


def probe_torch(rng) -> dict:
    import torch

    config = torch.__config__.show()
    version = re.search(r"(?:MKL-DNN|oneDNN) v([\d.]+)", config)
    blas = re.search(r"BLAS_INFO=(\w+)", config)
    mkldnn = torch.backends.mkldnn
    matmul_precision = getattr(getattr(mkldnn, "matmul", None), "fp32_precision", None)
    info = {
        "version": torch.__version__,
        "cuda": torch.version.cuda,
        "onednn": bool(mkldnn.is_available()),
        "onednn_version": version.group(1) if version else None,
        "acl": bool(mkldnn.is_acl_available()) if hasattr(mkldnn, "is_acl_available") else None,
        "blas": blas.group(1) if blas else None,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "fpmath_mode": _env_fpmath(),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "mkldnn_matmul_fp32_precision": str(matmul_precision) if matmul_precision is not None else None,
        "threads": torch.get_num_threads(),
    }

    def product(a, b):
        with torch.inference_mode():
            x, w = torch.from_numpy(a), torch.from_numpy(b)
            torch.nn.functional.linear(x, w.t().contiguous())  # nn.Linear's path, for the verbose lines
            return torch.matmul(x, w).numpy()

    info["max_rel_error"] = fingerprint(product, rng)
    return info


def probe_tensorflow(rng) -> dict:
    import tensorflow as tf
    from tensorflow.python.util import _pywrap_util_port as port

    info = {
        "version": tf.__version__,
        "onednn": bool(port.IsMklEnabled()),  # built with oneDNN and TF_ENABLE_ONEDNN_OPTS not 0
        "tf_enable_onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
        "fpmath_mode": _env_fpmath(),
        "intra_op_threads": os.environ.get("TF_NUM_INTRAOP_THREADS"),
    }
    info["max_rel_error"] = fingerprint(lambda a, b: tf.linalg.matmul(a, b).numpy(), rng)
    return info


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, value) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    data = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def onnx_matmul_model(weight) -> bytes:
    """An ONNX model ``Y = X @ W`` with ``W`` an initializer, as models hold weights, encoded by
    hand: the runtime set has ONNX Runtime but not the ``onnx`` package."""
    rows, cols = weight.shape
    shape = lambda *dims: b"".join(_field(1, _field(1, d)) for d in dims)  # noqa: E731
    value_info = lambda name, *dims: _field(1, name) + _field(2, _field(1, _field(1, 1) + _field(2, shape(*dims))))  # noqa: E731
    tensor = b"".join(_field(1, d) for d in weight.shape) + _field(2, 1) + _field(8, "W") + _field(9, weight.astype("<f4").tobytes())
    node = _field(1, "X") + _field(1, "W") + _field(2, "Y") + _field(3, "matmul") + _field(4, "MatMul")
    graph = (_field(1, node) + _field(2, "fingerprint") + _field(5, tensor)
             + _field(11, value_info("X", SIZE, rows)) + _field(12, value_info("Y", SIZE, cols)))
    return _field(1, 8) + _field(2, "model-server") + _field(7, graph) + _field(8, _field(1, "") + _field(2, 17))


def probe_onnxruntime(rng) -> dict:
    import numpy as np
    import onnxruntime

    try:  # the handler's own options, fast-math session entry included
        from handlers.frameworks.onnx import BF16_FASTMATH, session_options

        options = session_options()
    except ImportError:
        BF16_FASTMATH, options = "mlas.enable_gemm_fastmath_arm64_bfloat16", onnxruntime.SessionOptions()
    try:
        fastmath = options.get_session_config_entry(BF16_FASTMATH) or None
    except Exception:  # noqa: BLE001 - ONNX Runtime raises when the entry was never set
        fastmath = None
    info = {
        "version": onnxruntime.__version__,
        "providers": onnxruntime.get_available_providers(),
        "onednn": False,  # MLAS kernels; oneDNN only through the separate DNNL execution provider
        "acl": False,
        "fpmath_mode": "BF16" if fastmath == "1" else "STRICT",
        "session_config": {BF16_FASTMATH: fastmath} if fastmath is not None else {},
    }
    weight = rng.standard_normal((SIZE, SIZE)).astype(np.float32)
    session = onnxruntime.InferenceSession(onnx_matmul_model(weight), options, providers=["CPUExecutionProvider"])
    info["max_rel_error"] = fingerprint(lambda a, _: session.run(None, {"X": a})[0], rng, weight)
    return info


PROBES = {"torch": probe_torch, "tensorflow": probe_tensorflow, "onnxruntime": probe_onnxruntime}


def die_with_parent() -> None:
    """Linux: be killed when the process that started us dies, so a report never outlives it."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _probe_main(name: str, result_path: str) -> int:
    die_with_parent()
    import numpy as np

    started = time.perf_counter()
    try:
        info = PROBES[name](np.random.default_rng(0))
    except ImportError as err:
        info = {"error": f"not installed ({err})"}
    except Exception as err:  # noqa: BLE001 - a report, not a server: say what failed
        info = {"error": f"{type(err).__name__}: {err}"}
    info["probe_seconds"] = round(time.perf_counter() - started, 2)
    Path(result_path).write_text(json.dumps(info))
    return 0


# ------------------------------------------------------------------------------ report (parent)


def run_probe(name: str, env: dict, timeout: float = PROBE_TIMEOUT) -> dict:
    """Probe one framework in a child process and read its verbose lines."""
    child_env = {**env, "ONEDNN_VERBOSE": "1", "DNNL_VERBOSE": "1"}
    child_env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory(prefix="accel-") as tmp:
        result = Path(tmp) / "result.json"
        try:
            done = subprocess.run(
                [sys.executable, "-m", "server.acceleration", "probe", name, str(result)],
                env=child_env, cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, capture_output=True,
                text=True, errors="replace", timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return {"error": f"probe did not finish within {timeout:.0f}s"}
        if not result.exists():
            tail = " | ".join(done.stderr.strip().splitlines()[-3:])
            return {"error": f"probe exited with code {done.returncode}: {tail}"}
        info = json.loads(result.read_text())
    records = parse_verbose(done.stdout.splitlines())
    info["gemm_kernel"] = gemm_kernel(records)
    info["fpmath_attribute"] = fpmath_attribute(records)
    info["onednn_calls"] = dict(Counter(f"{r['primitive']},{r['implementation'] or '-'}" for r in records))
    if info.get("acl") is None and info.get("gemm_kernel"):
        info["acl"] = "acl" in info["gemm_kernel"]
    if "max_rel_error" in info:
        info["arithmetic"] = "bf16-level" if info["max_rel_error"] > BF16_ERROR else "fp32"
        info["bf16_fastmath_active"] = info["max_rel_error"] > BF16_ERROR
    return info


def _version(distributions: tuple[str, ...]) -> dict:
    for name in distributions:
        try:
            return {"version": metadata.version(name)}
        except metadata.PackageNotFoundError:
            continue
    return {"error": "not installed"}


def verdict(cpu: dict, requested: bool, mode: str, frameworks: dict) -> dict:
    probed = {n: f for n, f in frameworks.items() if "max_rel_error" in f}
    active = sorted(n for n, f in probed.items() if f["bf16_fastmath_active"])
    worst = max((f["max_rel_error"] for f in probed.values()), default=None)
    if active:
        summary = f"BF16 fast-math active in {', '.join(active)} (fp32 matmul error {worst:.1e}: bf16 arithmetic)"
    elif not probed:
        summary = "no framework could be probed"
    elif requested and not cpu["bf16"]:
        summary = (f"BF16 fast-math requested (fpmath {mode}) but inactive: this CPU has no bf16 "
                   f"instructions, matmuls run in fp32 (error {worst:.1e})")
    elif requested:
        summary = (f"BF16 fast-math requested (fpmath {mode}) but inactive: fp32-level error {worst:.1e} "
                   "in every framework probed")
    else:
        summary = f"BF16 fast-math inactive: not requested (fpmath {mode}); fp32 arithmetic (error {worst:.1e})"
    return {"bf16_fastmath_active": bool(active), "active_in": active, "requested": requested, "summary": summary}


def report(env: dict | None = None, frameworks: tuple[str, ...] = PROBED, timeout: float = PROBE_TIMEOUT) -> dict:
    """The whole report, probing ``frameworks`` in parallel child processes with ``env``."""
    env = dict(os.environ if env is None else env)
    cpu = cpu_features()
    mode = (env.get("ONEDNN_DEFAULT_FPMATH_MODE") or env.get("DNNL_DEFAULT_FPMATH_MODE") or "STRICT").upper()
    started = time.perf_counter()
    with ThreadPoolExecutor(max(1, len(frameworks))) as pool:
        futures = {name: pool.submit(run_probe, name, env, timeout) for name in frameworks}
        results = {name: future.result() for name, future in futures.items()}
    for info in results.values():
        info.update(architecture=cpu["architecture"], cpu_bf16=cpu["bf16"])
    results.update({name: _version(dists) for name, dists in VERSION_ONLY.items()})
    return {
        "verdict": verdict(cpu, mode == "BF16", mode, results),
        "architecture": cpu["architecture"],
        "cpu": cpu,
        "fpmath_mode": mode,
        "bf16_fastmath_requested": mode == "BF16",
        "frameworks": results,
        "seconds": round(time.perf_counter() - started, 2),
    }


def command(frameworks: list[str] | None, compact: bool, nice: int) -> int:
    """``python -m server accel-report``: the report for the workers' environment, on stdout."""
    from server.config import ConfigError, Settings
    from server.workers import worker_environment

    die_with_parent()
    if nice:
        os.nice(nice)
    try:
        settings = Settings.from_env()
    except ConfigError as err:
        print(f"configuration error: {err}", file=sys.stderr)
        return 2
    result = report(worker_environment(settings.intra_op_threads, settings.fpmath_mode), tuple(frameworks or PROBED))
    print(json.dumps(result, separators=(",", ":")) if compact else json.dumps(result, indent=2))
    return 0


async def log_report(logger, timeout: float = 600.0) -> None:
    """Run the report in a child process, off the event loop, and log it as one line.

    The child and its probes form their own process group, killed when this task is cancelled
    (the service stops) or times out, so the report never leaves a process behind.
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", "accel-report", "--compact", "--nice", "10",
        cwd=PROJECT_ROOT, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, start_new_session=True,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        logger.warning("acceleration report: no answer within %.0fs, stopped", timeout)
        return
    finally:
        if process.returncode is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            await process.wait()
    if process.returncode != 0:
        tail = " | ".join(stderr.decode(errors="replace").strip().splitlines()[-3:])
        logger.warning("acceleration report failed (exit code %s): %s", process.returncode, tail)
        return
    logger.info("acceleration report %s", stdout.decode(errors="replace").strip())


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "probe" and sys.argv[2] in PROBES:
        sys.exit(_probe_main(sys.argv[2], sys.argv[3]))
    sys.exit("usage: python -m server.acceleration probe {torch,tensorflow,onnxruntime} RESULT_FILE")
