"""The acceleration report's parsing and judging, on recorded and made-up inputs (no framework
probed): oneDNN's verbose lines of x86 and Graviton3, the auxiliary vector's hwcaps, the error
that tells bf16 from fp32, and the hand-encoded ONNX models the probes serve."""

import struct
from pathlib import Path

import numpy as np
import pytest

from server.diagnostics import cpu as cpus
from server.diagnostics import onednn, onnx_encoding, probes

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


# ------------------------------------------------------------------ recorded arm64 output


def test_parses_recorded_graviton3_verbose_lines():
    lines = (FIXTURES / "onednn_verbose_graviton3.txt").read_text().splitlines()
    records = onednn.parse_verbose(lines)
    # exec lines only: creation, info and graph-API lines are not kernels that ran
    assert [r["primitive"] for r in records] == ["inner_product", "reorder", "matmul", "matmul", "matmul"]
    assert onednn.kernel(records) == "gemm:acl"
    assert onednn.fpmath_attribute(records) == "bf16"
    matmul = records[2]
    assert matmul["implementation"] == "gemm:acl" and matmul["src_type"] == "f32"
    assert matmul["problem"] == "256x256:256x256" and matmul["ms"] == pytest.approx(0.418945)
    assert records[-1]["src_type"] == "f32" and records[-1]["fpmath"] == "bf16"  # older format


def test_parses_x86_kernel_names():
    lines = [
        "onednn_verbose,v1,primitive,exec,cpu,matmul,brg_matmul:avx2,undef,src:f32::blocked:ab::f0 "
        "wei:f32::blocked:ab::f0 dst:f32::blocked:ab::f0,,,128x256:256x64,0.05",
        "onednn_verbose,v1,primitive,exec,cpu,gemm_api,,undef,src_f32::blocked:ab:f0 wei_f32::blocked:ab:f0 "
        "dst_f32::blocked:ab:f0,,,256x256:256x256,1.1",
        "onednn_verbose,exec,cpu,inner_product,ref:any,forward_inference,src_f32::blocked:ab:f0,,,mb1ic4oc3,0.01",
        "not a verbose line",
    ]
    records = onednn.parse_verbose(lines)
    assert [r["implementation"] for r in records] == ["brg_matmul:avx2", "", "ref:any"]
    assert onednn.kernel(records[:1]) == "brg_matmul:avx2"
    assert onednn.kernel(records[1:2]) == "gemm_api"
    assert onednn.fpmath_attribute(records) is None
    assert onednn.kernel([]) is None


BF16_MATMUL = ("onednn_verbose,v1,primitive,exec,cpu,matmul,brg_matmul:avx512_core_bf16,undef,src:bf16::blocked:ab::f0 "
               "wei:bf16::blocked:ab::f0 dst:bf16::blocked:ab::f0,attr-scratchpad:user,,256x256:256x256,0.13")
FPMATH_IGNORED = ("onednn_verbose,v1,primitive,exec,cpu,matmul,brg_matmul:avx512_core,undef,src:f32::blocked:ab::f0 "
                  "wei:f32::blocked:ab::f0 dst:f32::blocked:ab::f0,attr-scratchpad:user attr-fpmath:bf16,,256x256:256x256,0.25")


def test_verbose_lines_are_split_by_operation():
    lines = ["noise before", f"{onednn.MARK}linear", BF16_MATMUL, f"{onednn.MARK}conv", "a TF log line",
             FPMATH_IGNORED, f"{onednn.MARK}end"]
    sections = onednn.split_by_operation(lines)
    assert sections == {"linear": [BF16_MATMUL], "conv": ["a TF log line", FPMATH_IGNORED], "end": []}


def test_each_operation_is_judged_by_kernel_and_error():
    bf16 = onednn.judge(3e-3, onednn.parse_verbose([BF16_MATMUL]))
    assert bf16["bf16"] is True and bf16["arithmetic"] == "bf16" and bf16["data_types"] == ["bf16"]
    # the attribute alone is not bf16 arithmetic: oneDNN's fp32 kernel ignores it
    ignored = onednn.judge(4e-7, onednn.parse_verbose([FPMATH_IGNORED]))
    assert ignored["bf16"] is False and ignored["fpmath_attribute"] == "bf16" and "ignored" in ignored["evidence"]
    # no oneDNN kernel (ONNX Runtime's MLAS with its arm64 option): the error alone tells
    assert onednn.judge(3e-3, [])["bf16"] is True and onednn.judge(4e-7, [])["bf16"] is False
    # a large error from an fp32 kernel without the attribute is not BF16 fast-math
    fp32 = FPMATH_IGNORED.replace(" attr-fpmath:bf16", "")
    assert onednn.judge(3e-3, onednn.parse_verbose([fp32]))["bf16"] is False


def auxv_bytes(hwcap: int, hwcap2: int) -> bytes:
    pairs = [(6, 4096), (cpus.AT_HWCAP, hwcap), (cpus.AT_HWCAP2, hwcap2), (0, 0)]
    return b"".join(struct.pack("@LL", kind, value) for kind, value in pairs)


def test_arm64_bf16_comes_from_hwcap2():
    graviton3 = cpus.parse_auxv(auxv_bytes(cpus.HWCAP_SVE, cpus.HWCAP2_BF16
                                                   | cpus.HWCAP2_SVEBF16 | cpus.HWCAP2_I8MM))
    cpu = cpus.cpu_features("aarch64", "CPU part\t: 0xd40\n", graviton3)
    assert cpu["bf16"] is True and cpu["model"] == "Neoverse-V1 (Graviton3)"
    assert {"sve", "bf16", "svebf16", "i8mm"} <= set(cpu["features"])
    graviton2 = cpus.parse_auxv(auxv_bytes(0, 0))
    cpu = cpus.cpu_features("arm64", "CPU part\t: 0xd0c\n", graviton2)
    assert cpu["bf16"] is False and cpu["architecture"] == "aarch64"


def test_x86_bf16_comes_from_cpu_flags():
    assert cpus.cpu_features("x86_64", "flags\t: fpu sse avx2 fma\n")["bf16"] is False
    sapphire = cpus.cpu_features("x86_64", "flags\t: avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n")
    assert sapphire["bf16"] is True and "amx_bf16" in sapphire["features"]


def test_auxv_of_this_process_parses():
    auxv = cpus.read_auxv()
    assert cpus.AT_HWCAP in auxv


def test_error_tells_bf16_from_fp32():
    def to_bf16(x):  # round to bf16 (keep 8 significant bits), as bf16 kernels do with their operands
        return (x.view(np.uint32) + 0x8000 & 0xFFFF0000).view(np.float32)

    x, w, b, exact = probes.operands(np.random.default_rng(1))["linear"]
    fp32 = probes.relative_error(x @ w + b, exact)
    bf16 = probes.relative_error(to_bf16(x) @ to_bf16(w) + b, exact)
    assert fp32 < 1e-5 < onednn.BF16_ERROR < bf16 < 1e-2


def test_onnx_models_are_encoded_by_hand_correctly():
    import onnxruntime

    def session(model: bytes):
        return onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])

    weight = np.arange(6, dtype=np.float32).reshape(3, 2)
    x = np.ones((probes.SIZE, 3), dtype=np.float32)
    np.testing.assert_allclose(session(probes.onnx_matmul_model(weight)).run(None, {"X": x})[0], x @ weight)
    for name, op_type in (("linear", "Gemm"), ("conv", "Conv")):
        x, w, b, exact = probes.operands(np.random.default_rng(2))[name]
        model = onnx_encoding.onnx_model(op_type, x.shape, [("W", w), ("B", b)], exact.shape)
        assert probes.relative_error(session(model).run(None, {"X": x})[0], exact) < 1e-5


# ------------------------------------------------------------------ workers' math environment

