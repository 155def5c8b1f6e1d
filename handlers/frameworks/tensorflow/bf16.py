"""TensorFlow's BF16 fast math: when the workers' fpmath mode (``WorkerConfig.fpmath_mode``) is
BF16, on the CPUs where it pays, grappler's oneDNN bf16 rewrite is switched on (``setup``)."""

from pathlib import Path

BF16_REWRITE = "auto_mixed_precision_onednn_bfloat16"


def wants_bf16_rewrite(mode: str, machine: str, flags: set[str]) -> bool:
    """Whether BF16 fast-math needs TensorFlow's oneDNN bf16 rewrite on this CPU.

    On x86 the fpmath mode does nothing for TensorFlow's matmuls: they call oneDNN's sgemm API
    (``gemm_api`` in the verbose log), which has no fpmath. The grappler pass
    ``auto_mixed_precision_onednn_bfloat16`` instead rewrites each served graph (SavedModel
    signatures and traced Keras calls) to run MatMul, BatchMatMul and Conv2D on bf16 tensors, cast
    back to fp32 at the outputs: oneDNN's ``avx512_core_bf16`` / AMX kernels, measured here. It is
    asked for only where the CPU has bf16 instructions (AVX512-BF16 or AMX-BF16). On arm64
    (Graviton) oneDNN with the Arm Compute Library honours the fpmath mode itself (``gemm:acl``).
    """
    if mode.strip().upper() != "BF16" or machine.lower() not in ("x86_64", "amd64"):
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return set()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return set(line.partition(":")[2].split())

