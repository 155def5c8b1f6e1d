"""The acceleration report (issue 4 item 3) and the workers' math environment (item 2).

``python -m server accel-report`` runs here for real: on this x86 machine without bf16 (and on any
machine where BF16 fast-math is not asked for) it must read inactive with an fp32-level
fingerprint. The arm64 side is checked by parsing recorded Graviton3 verbose lines and a made-up
auxiliary vector.
"""

import asyncio
import json
import logging
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from server import acceleration
from server.config import ConfigError, Settings, fpmath_mode
from server.workers import worker_environment

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
MATH_VARIABLES = ("MODEL_SERVER_BF16_FASTMATH", "ONEDNN_DEFAULT_FPMATH_MODE", "DNNL_DEFAULT_FPMATH_MODE",
                  "MODEL_SERVER_ACCEL_REPORT", "ONEDNN_VERBOSE", "DNNL_VERBOSE")


def clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in MATH_VARIABLES}
    env.update(extra)
    return env


def run_report(**extra) -> dict:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "server", "accel-report"], cwd=ROOT, env=clean_env(**extra),
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    report["wall_seconds"] = time.monotonic() - started
    return report


@pytest.fixture(scope="module")
def default_report():
    return run_report()


# ------------------------------------------------------------------ the command, run here


def test_report_here_reads_fast_math_inactive_with_fp32_fingerprint(default_report):
    report = default_report
    print(json.dumps(report, indent=2))
    assert report["architecture"] in ("x86_64", "aarch64")
    assert report["fpmath_mode"] == "STRICT" and report["bf16_fastmath_requested"] is False
    assert report["verdict"]["bf16_fastmath_active"] is False
    assert "inactive" in report["verdict"]["summary"]
    for name in acceleration.PROBED:
        info = report["frameworks"][name]
        assert "error" not in info, info
        assert info["version"] and info["architecture"] == report["architecture"]
        assert info["cpu_bf16"] == report["cpu"]["bf16"]
        assert info["max_rel_error"] < 1e-5, (name, info["max_rel_error"])  # fp32 arithmetic
        assert info["arithmetic"] == "fp32" and info["bf16_fastmath_active"] is False
        assert info["fpmath_mode"] == "STRICT"
    # the build this venv has: CPU in the images, PyPI's CUDA build in the x86 test venv (docs/images.md)
    from importlib.metadata import distributions
    cuda_build = any(d.metadata["Name"].lower().startswith("nvidia-") for d in distributions())
    assert (report["frameworks"]["torch"]["cuda"] is None) == (not cuda_build)
    for name in acceleration.VERSION_ONLY:
        assert report["frameworks"][name]["version"]
    assert report["wall_seconds"] < 60


def test_report_here_describes_the_cpu(default_report):
    cpu = default_report["cpu"]
    if cpu["architecture"] != "x86_64":
        pytest.skip("the x86 flags are checked on x86")
    flags = set(Path("/proc/cpuinfo").read_text().split())
    assert cpu["bf16"] == bool(flags & {"avx512_bf16", "amx_bf16"})
    assert ("avx2" in cpu["features"]) == ("avx2" in flags)


def test_requested_fast_math_without_bf16_hardware_reads_inactive():
    """The fpmath attribute is asked for, yet the arithmetic stays fp32 on a CPU without bf16."""
    if acceleration.cpu_features()["bf16"]:
        pytest.skip("this CPU has bf16: fast-math may really be active here")
    report = run_report(MODEL_SERVER_BF16_FASTMATH="true", TF_ENABLE_ONEDNN_OPTS="1")
    assert report["fpmath_mode"] == "BF16" and report["verdict"]["requested"] is True
    assert report["verdict"]["bf16_fastmath_active"] is False
    assert "no bf16" in report["verdict"]["summary"]
    for name in ("torch", "tensorflow"):
        info = report["frameworks"][name]
        assert info["fpmath_mode"] == "BF16"
        assert info["max_rel_error"] < 1e-5 and info["bf16_fastmath_active"] is False
    assert report["frameworks"]["tensorflow"]["onednn"] is True


def test_bad_variable_stops_the_report_naming_it():
    done = subprocess.run([sys.executable, "-m", "server", "accel-report"], cwd=ROOT, capture_output=True,
                          text=True, env=clean_env(DNNL_DEFAULT_FPMATH_MODE="fast"), timeout=60)
    assert done.returncode == 2 and "DNNL_DEFAULT_FPMATH_MODE" in done.stderr


# ------------------------------------------------------------------ recorded arm64 output


def test_parses_recorded_graviton3_verbose_lines():
    lines = (FIXTURES / "onednn_verbose_graviton3.txt").read_text().splitlines()
    records = acceleration.parse_verbose(lines)
    # exec lines only: creation, info and graph-API lines are not kernels that ran
    assert [r["primitive"] for r in records] == ["inner_product", "reorder", "matmul", "matmul", "matmul"]
    assert acceleration.gemm_kernel(records) == "gemm:acl"
    assert acceleration.fpmath_attribute(records) == "bf16"
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
    records = acceleration.parse_verbose(lines)
    assert [r["implementation"] for r in records] == ["brg_matmul:avx2", "", "ref:any"]
    assert acceleration.gemm_kernel(records[:1]) == "brg_matmul:avx2"
    assert acceleration.gemm_kernel(records[1:2]) == "gemm_api"
    assert acceleration.fpmath_attribute(records) is None
    assert acceleration.gemm_kernel([]) is None


def auxv_bytes(hwcap: int, hwcap2: int) -> bytes:
    pairs = [(6, 4096), (acceleration.AT_HWCAP, hwcap), (acceleration.AT_HWCAP2, hwcap2), (0, 0)]
    return b"".join(struct.pack("@LL", kind, value) for kind, value in pairs)


def test_arm64_bf16_comes_from_hwcap2():
    graviton3 = acceleration.parse_auxv(auxv_bytes(acceleration.HWCAP_SVE, acceleration.HWCAP2_BF16
                                                   | acceleration.HWCAP2_SVEBF16 | acceleration.HWCAP2_I8MM))
    cpu = acceleration.cpu_features("aarch64", "CPU part\t: 0xd40\n", graviton3)
    assert cpu["bf16"] is True and cpu["model"] == "Neoverse-V1 (Graviton3)"
    assert {"sve", "bf16", "svebf16", "i8mm"} <= set(cpu["features"])
    graviton2 = acceleration.parse_auxv(auxv_bytes(0, 0))
    cpu = acceleration.cpu_features("arm64", "CPU part\t: 0xd0c\n", graviton2)
    assert cpu["bf16"] is False and cpu["architecture"] == "aarch64"


def test_x86_bf16_comes_from_cpu_flags():
    assert acceleration.cpu_features("x86_64", "flags\t: fpu sse avx2 fma\n")["bf16"] is False
    sapphire = acceleration.cpu_features("x86_64", "flags\t: avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n")
    assert sapphire["bf16"] is True and "amx_bf16" in sapphire["features"]


def test_auxv_of_this_process_parses():
    auxv = acceleration.read_auxv()
    assert acceleration.AT_HWCAP in auxv


def test_fingerprint_tells_bf16_from_fp32():
    import numpy as np

    def bf16_matmul(a, b):  # round the inputs to bf16 (keep 8 significant bits), as fast-math does
        to_bf16 = lambda x: (x.view(np.uint32) + 0x8000 & 0xFFFF0000).view(np.float32)  # noqa: E731
        return to_bf16(a) @ to_bf16(b)

    fp32 = acceleration.fingerprint(lambda a, b: a @ b, np.random.default_rng(1))
    bf16 = acceleration.fingerprint(bf16_matmul, np.random.default_rng(1))
    assert fp32 < 1e-5 < acceleration.BF16_ERROR < bf16 < 1e-2


def test_onnx_model_is_encoded_by_hand_correctly():
    import numpy as np
    import onnxruntime

    weight = np.arange(6, dtype=np.float32).reshape(3, 2)
    session = onnxruntime.InferenceSession(acceleration.onnx_matmul_model(weight), providers=["CPUExecutionProvider"])
    x = np.ones((acceleration.SIZE, 3), dtype=np.float32)
    np.testing.assert_allclose(session.run(None, {"X": x})[0], x @ weight)


# ------------------------------------------------------------------ workers' math environment


def test_fast_math_switch_sets_both_fpmath_names():
    env = worker_environment(3, {"MODEL_SERVER_BF16_FASTMATH": "true"})
    assert env["DNNL_DEFAULT_FPMATH_MODE"] == env["ONEDNN_DEFAULT_FPMATH_MODE"] == "BF16"
    assert env["TF_NUM_INTRAOP_THREADS"] == env["OMP_NUM_THREADS"] == "3"
    assert env["TF_NUM_INTEROP_THREADS"] == "1"


@pytest.mark.parametrize("given, expected", [
    ({}, None),
    ({"DNNL_DEFAULT_FPMATH_MODE": "BF16"}, "BF16"),  # the arm64 image's default
    ({"ONEDNN_DEFAULT_FPMATH_MODE": "bf16"}, "BF16"),
    ({"DNNL_DEFAULT_FPMATH_MODE": "BF16", "ONEDNN_DEFAULT_FPMATH_MODE": "STRICT"}, "STRICT"),  # oneDNN's order
    ({"DNNL_DEFAULT_FPMATH_MODE": "BF16", "MODEL_SERVER_BF16_FASTMATH": "false"}, "STRICT"),
    ({"MODEL_SERVER_BF16_FASTMATH": "true"}, "BF16"),
])
def test_fpmath_names_are_copied_to_each_other(given, expected):
    env = worker_environment(1, given)
    assert env.get("DNNL_DEFAULT_FPMATH_MODE") == expected
    assert env.get("ONEDNN_DEFAULT_FPMATH_MODE") == expected
    assert fpmath_mode(given) == expected


def test_explicit_thread_variables_win():
    env = worker_environment(4, {"TF_NUM_INTRAOP_THREADS": "2", "TF_NUM_INTEROP_THREADS": "2"})
    assert env["TF_NUM_INTRAOP_THREADS"] == env["TF_NUM_INTEROP_THREADS"] == "2"


@pytest.mark.parametrize("name, value", [
    ("MODEL_SERVER_BF16_FASTMATH", "maybe"),
    ("DNNL_DEFAULT_FPMATH_MODE", "fast"),
    ("ONEDNN_DEFAULT_FPMATH_MODE", "bf32"),
    ("MODEL_SERVER_ACCEL_REPORT", "sometimes"),
])
def test_bad_values_stop_startup_naming_the_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


def test_settings_defaults():
    settings = Settings.from_env({})
    assert settings.accel_report is False and settings.bf16_fastmath is None and settings.fpmath_mode is None
    settings = Settings.from_env({"MODEL_SERVER_ACCEL_REPORT": "true", "MODEL_SERVER_BF16_FASTMATH": "TRUE"})
    assert settings.accel_report is True and settings.bf16_fastmath is True and settings.fpmath_mode == "BF16"


# ------------------------------------------------------------------ the startup log line


def test_log_report_cancelled_leaves_no_process(caplog):
    """Shutdown during the report: the child and its probes are killed, none left behind."""

    async def scenario():
        task = asyncio.create_task(acceleration.log_report(logging.getLogger("test")))
        children = []
        for _ in range(100):
            await asyncio.sleep(0.05)
            children = psutil.Process().children(recursive=True)
            if len(children) >= 2:  # the report and at least one probe
                break
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return children

    children = asyncio.run(scenario())
    assert children, "the report never started"
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"left behind: {[p.pid for p in alive]}"


def test_server_logs_the_report_once_and_stops_clean(start_server):
    server = start_server(SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_ACCEL_REPORT="true")
    deadline = time.monotonic() + 120
    line = None
    while time.monotonic() < deadline and line is None:
        line = next((l for l in server.log().splitlines() if "acceleration report {" in l), None)
        time.sleep(0.5)
    assert line, server.log()
    report = json.loads(line.split("acceleration report ", 1)[1])
    assert report["verdict"]["bf16_fastmath_active"] is False
    assert server.client.get("/ping").status_code == 200
    # start_server stops it with SIGTERM and fails the test if any process is left behind
