"""oneDNN's verbose log (``ONEDNN_VERBOSE=1``) read back: which kernel ran each matrix product or
convolution, with which data types and fpmath attribute, and the verdict of one operation from
its kernel and its measured error."""

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

Info = dict[str, Any]
BF16_ERROR = 1e-4  # error above this: reduced-precision arithmetic (bf16 ~1e-3, fp32 ~1e-7)
MARK = "accel-probe-op,"  # the probe's line before each operation's verbose lines

COMPUTE_PRIMITIVES = ("matmul", "inner_product", "gemm_api", "convolution")


def parse_verbose(lines: Iterable[str]) -> list[Info]:
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
            milliseconds: float | None = float(fields[-1])
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


def _computing(records: list[Info]) -> list[Info]:
    return [r for r in records if r["primitive"] in COMPUTE_PRIMITIVES]


def kernel(records: list[Info]) -> str | None:
    """The implementation oneDNN ran matrix products and convolutions on most often
    (``gemm:acl``, ``brg_matmul:avx512_core_bf16``, ``jit:avx2``...); ``gemm_api`` for its sgemm
    API, which names none."""
    counts = Counter(r["implementation"] or r["primitive"] for r in _computing(records))
    return counts.most_common(1)[0][0] if counts else None


def fpmath_attribute(records: list[Info]) -> str | None:
    """The fpmath attribute on oneDNN's matrix products and convolutions, if any carried one."""
    modes = Counter(r["fpmath"] for r in _computing(records) if r["fpmath"])
    return modes.most_common(1)[0][0] if modes else None


def data_types(records: list[Info]) -> list[str]:
    """The source data types oneDNN's matrix products and convolutions ran on (f32, bf16...)."""
    return sorted({r["src_type"] for r in _computing(records) if r["src_type"]})


def split_by_operation(lines: Iterable[str]) -> dict[str, list[str]]:
    """The child's stdout cut at its ``MARK`` lines: the lines printed while each operation ran."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lines:
        if line.startswith(MARK):
            current = sections.setdefault(line[len(MARK):].strip(), [])
        elif current is not None:
            current.append(line)
    return sections


def judge(error: float, records: list[Info]) -> Info:
    """One operation's verdict from the kernel oneDNN ran it on and its error against float64.

    bf16 only when both say so: a bf16-level error, and either a oneDNN kernel on bf16 data or
    with the bf16 fpmath attribute, or no oneDNN kernel at all (the framework's own GEMM, e.g.
    MLAS: then the error alone tells). An fp32-level error is fp32 whatever the attribute says.
    """
    implementation, types, fpmath = kernel(records), data_types(records), fpmath_attribute(records)
    reduced = error > BF16_ERROR
    if implementation is None:
        seen = "no oneDNN kernel (the framework's own GEMM: MKL, OpenBLAS, Eigen or MLAS)"
        bf16 = reduced
    else:
        seen = f"{implementation} on {'/'.join(types) or 'unknown'} data"
        if fpmath:
            seen += f" with attr-fpmath:{fpmath}" + (" (ignored by this kernel)" if fpmath == "bf16" and not reduced else "")
        bf16 = reduced and ("bf16" in types or fpmath == "bf16")
    arithmetic = "bf16" if bf16 else "reduced, not by a bf16 kernel" if reduced else "fp32"
    return {"max_rel_error": error, "kernel": implementation, "data_types": types, "fpmath_attribute": fpmath,
            "arithmetic": arithmetic, "bf16": bf16, "evidence": f"{seen}; error {error:.1e}"}


