"""What this CPU offers the frameworks' math: architecture, bf16 instructions (x86 flags, arm64
hwcaps from the auxiliary vector) and, on arm64, which Neoverse core (which Graviton) it is."""

import ctypes
import platform
import struct
from pathlib import Path
from typing import Any

Info = dict[str, Any]

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
        getauxval = ctypes.CDLL(None).getauxval
        getauxval.restype = ctypes.c_ulong
        return {kind: int(getauxval(kind)) for kind in (AT_HWCAP, AT_HWCAP2)}
    except (OSError, AttributeError):
        return {}


def cpu_features(machine: str | None = None, cpuinfo: str | None = None, auxv: dict[int, int] | None = None) -> Info:
    """Architecture and bf16 support: HWCAP2_BF16 on arm64, AVX512-BF16 or AMX-BF16 on x86."""
    machine = (machine or platform.machine()).lower()
    machine = {"arm64": "aarch64", "amd64": "x86_64"}.get(machine, machine)
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
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


