"""The acceleration report (``python -m server accel-report``): each framework probed in a child
process with the workers' environment, each operation judged from oneDNN's log and its error, and
one verdict on whether BF16 fast-math is active."""

import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any

from handlers.lifetime import die_with_parent
from server.diagnostics.cpu import cpu_features
from server.diagnostics.onednn import fpmath_attribute, judge, kernel, parse_verbose, split_by_operation
from server.diagnostics.probes import OPS, PROBED
from server.shared.environment import fpmath_mode, on_project_path
from server.shared.paths import PROJECT_ROOT

Info = dict[str, Any]
VERSION_ONLY = {"xgboost": ("xgboost-cpu", "xgboost"), "scikit-learn": ("scikit-learn",)}
PROBE_TIMEOUT = 240.0


def run_probe(name: str, env: dict[str, str], threads: int, timeout: float = PROBE_TIMEOUT) -> Info:
    """Probe one framework in a child process and judge each operation from its verbose lines."""
    child_env = {**env, "ONEDNN_VERBOSE": "1", "DNNL_VERBOSE": "1"}
    child_env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    on_project_path(child_env)
    with tempfile.TemporaryDirectory(prefix="accel-") as tmp:
        result = Path(tmp) / "result.json"
        try:
            done = subprocess.run(
                [sys.executable, "-m", "server.diagnostics.probes", name, str(threads), str(result)],
                env=child_env, cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, capture_output=True,
                text=True, errors="replace", timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return {"error": f"probe did not finish within {timeout:.0f}s"}
        if not result.exists():
            tail = " | ".join(done.stderr.strip().splitlines()[-3:])
            return {"error": f"probe exited with code {done.returncode}: {tail}"}
        info: Info = json.loads(result.read_text())
    if "errors" not in info:
        return info
    sections = split_by_operation(done.stdout.splitlines())
    records = {op: parse_verbose(sections.get(op, [])) for op in info["errors"]}
    info["ops"] = {op: judge(error, records[op]) for op, error in info.pop("errors").items()}
    everything = [record for op_records in records.values() for record in op_records]
    info["gemm_kernel"] = info["ops"].get("linear", {}).get("kernel")  # nn.Linear's / Dense's, as before per-op results
    info["fpmath_attribute"] = fpmath_attribute(everything)
    info["onednn_calls"] = dict(Counter(f"{r['primitive']},{r['implementation'] or '-'}" for r in everything))
    if info.get("acl") is None and kernel(everything):
        info["acl"] = "acl" in str(kernel(everything))
    ops = info["ops"]
    info["bf16_ops"] = [op for op in OPS if ops.get(op, {}).get("bf16")]
    info["max_rel_error"] = max(op["max_rel_error"] for op in ops.values())
    info["arithmetic"] = "bf16" if len(info["bf16_ops"]) == len(ops) else "mixed" if info["bf16_ops"] else "fp32"
    info["bf16_fastmath_active"] = bool(info["bf16_ops"])
    return info


def _version(distributions: tuple[str, ...]) -> Info:
    for name in distributions:
        try:
            return {"version": metadata.version(name)}
        except metadata.PackageNotFoundError:
            continue
    return {"error": "not installed"}


def verdict(cpu: Info, requested: bool, mode: str, frameworks: dict[str, Info]) -> Info:
    """The report's conclusion, from what the probes measured; ``requested`` only words it."""
    probed = {n: f for n, f in frameworks.items() if "ops" in f}
    active = sorted(n for n, f in probed.items() if f["bf16_fastmath_active"])
    fp32 = sorted(n for n in probed if n not in active)
    if active:
        worst = max(probed[n]["max_rel_error"] for n in active)
        where = ", ".join(f"{n} ({', '.join(probed[n]['bf16_ops'])})" for n in active)
        summary = f"BF16 fast-math active in {where}: bf16 kernels and bf16-level error (up to {worst:.1e})"
        if fp32:
            summary += f"; fp32 in {', '.join(fp32)}"
    elif not probed:
        summary = "no framework could be probed"
    else:
        worst = max(f["max_rel_error"] for f in probed.values())
        if requested and not cpu["bf16"]:
            summary = (f"BF16 fast-math requested (fpmath {mode}) but inactive: this CPU has no bf16 "
                       f"instructions, GEMMs and convolutions run in fp32 (error {worst:.1e})")
        elif requested:
            summary = (f"BF16 fast-math requested (fpmath {mode}) but inactive: fp32 kernels and fp32-level "
                       f"error ({worst:.1e}) in every framework probed")
        else:
            summary = f"BF16 fast-math inactive: not requested (fpmath {mode}); fp32 arithmetic (error {worst:.1e})"
    return {"bf16_fastmath_active": bool(active), "active_in": active, "requested": requested, "summary": summary}


def report(env: dict[str, str] | None = None, frameworks: tuple[str, ...] = PROBED, timeout: float = PROBE_TIMEOUT,
           threads: int | None = None) -> Info:
    """The whole report, probing ``frameworks`` in parallel child processes with ``env`` (the
    workers' environment, whose fpmath mode ``server.shared.environment.worker_environment`` normalized)."""
    env = dict(os.environ if env is None else env)
    threads = threads or len(os.sched_getaffinity(0))
    cpu = cpu_features()
    mode = fpmath_mode(env) or "STRICT"
    started = time.perf_counter()
    with ThreadPoolExecutor(max(1, len(frameworks))) as pool:
        futures = {name: pool.submit(run_probe, name, env, threads, timeout) for name in frameworks}
        results = {name: future.result() for name, future in futures.items()}
    for info in results.values():
        info.update(architecture=cpu["architecture"], cpu_bf16=cpu["bf16"], fpmath_mode=mode)
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
    from server.shared.environment import worker_environment

    die_with_parent()
    if nice:
        os.nice(nice)
    try:
        settings = Settings.from_env()
    except ConfigError as err:
        print(f"configuration error: {err}", file=sys.stderr)
        return 2
    env = worker_environment(settings.intra_op_threads, settings.fpmath_mode)
    result = report(env, tuple(frameworks or PROBED), threads=settings.intra_op_threads)
    print(json.dumps(result, separators=(",", ":")) if compact else json.dumps(result, indent=2))
    return 0
