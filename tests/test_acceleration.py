"""The acceleration report and BF16 fast-math (issues 4 and 11), and the workers' math environment.

``python -m server accel-report`` runs here for real. Without the switch it must read inactive
with fp32-level errors on every operation. With ``MODEL_SERVER_BF16_FASTMATH=true`` on a CPU with
bf16 instructions (these machines: AVX512-BF16) PyTorch's and TensorFlow's linear, matmul and
conv must run on bf16 kernels with a bf16-level error, and a TorchScript model served over HTTP
must answer with a bf16-sized error, only then. The arm64 side is checked by parsing recorded
Graviton3 verbose lines and a made-up auxiliary vector.
"""

import asyncio
import io
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from harness.server import ROOT
from server.diagnostics import cpu, probes
from server.diagnostics import report as accel_report
from server.front import accel_log
from tests.builders import npy

FIXTURES = Path(__file__).resolve().parent / "fixtures"
MATH_VARIABLES = ("MODEL_SERVER_BF16_FASTMATH", "ONEDNN_DEFAULT_FPMATH_MODE", "DNNL_DEFAULT_FPMATH_MODE",
                  "MODEL_SERVER_ACCEL_REPORT", "ONEDNN_VERBOSE", "DNNL_VERBOSE", "TF_ENABLE_ONEDNN_OPTS")
HAS_BF16 = cpu.cpu_features()["bf16"]
needs_bf16 = pytest.mark.skipif(not HAS_BF16, reason="this CPU has no bf16 instructions")


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


@pytest.fixture(scope="module")
def fastmath_report():
    return run_report(MODEL_SERVER_BF16_FASTMATH="true")


# ------------------------------------------------------------------ the command, run here


def test_report_here_reads_fast_math_inactive_with_fp32_errors(default_report):
    report = default_report
    assert report["architecture"] in ("x86_64", "aarch64")
    assert report["fpmath_mode"] == "STRICT" and report["bf16_fastmath_requested"] is False
    assert report["verdict"]["bf16_fastmath_active"] is False
    assert "inactive" in report["verdict"]["summary"]
    for name in probes.PROBED:
        info = report["frameworks"][name]
        assert "error" not in info, info
        assert info["version"] and info["architecture"] == report["architecture"]
        assert info["cpu_bf16"] == report["cpu"]["bf16"]
        assert set(info["ops"]) == set(probes.OPS)
        for op, result in info["ops"].items():
            assert result["max_rel_error"] < 1e-5, (name, op, result)  # fp32 arithmetic
            assert result["arithmetic"] == "fp32" and result["bf16"] is False
            assert "bf16" not in result["data_types"]
        assert info["arithmetic"] == "fp32" and info["bf16_fastmath_active"] is False and info["bf16_ops"] == []
        assert info["fpmath_mode"] == "STRICT"
    # the build this venv has: CPU in the images, PyPI's CUDA build in the x86 test venv (docs/images.md)
    from importlib.metadata import distributions
    cuda_build = any(d.metadata["Name"].lower().startswith("nvidia-") for d in distributions())
    assert (report["frameworks"]["torch"]["cuda"] is None) == (not cuda_build)
    assert report["frameworks"]["torch"]["fastmath_route"] == "fp32"
    assert report["frameworks"]["tensorflow"]["bf16_rewrite"] is False
    assert report["frameworks"]["tensorflow"]["ops"]["conv"]["kernel"]  # TensorFlow's convolutions run on oneDNN
    for name in accel_report.VERSION_ONLY:
        assert report["frameworks"][name]["version"]
    assert report["wall_seconds"] < 150  # three probes in parallel, each saving and loading three models


@needs_bf16
def test_switch_on_moves_torch_and_tensorflow_to_bf16_kernels(fastmath_report):
    """The switch really on: every served operation on a bf16 kernel, with a bf16-level error."""
    report = fastmath_report
    print(json.dumps(report["verdict"]))
    assert report["fpmath_mode"] == "BF16" and report["bf16_fastmath_requested"] is True
    assert report["verdict"]["bf16_fastmath_active"] is True
    assert {"torch", "tensorflow"} <= set(report["verdict"]["active_in"])
    for name in ("torch", "tensorflow"):
        info = report["frameworks"][name]
        assert info["bf16_ops"] == list(probes.OPS), info
        for op, result in info["ops"].items():
            assert 1e-4 < result["max_rel_error"] < 2e-2, (name, op, result)  # 8 significant bits
            assert "bf16" in result["data_types"] and result["kernel"], (name, op, result)
            assert result["arithmetic"] == "bf16"
        assert info["arithmetic"] == "bf16" and info["bf16_fastmath_active"] is True
    if report["architecture"] == "x86_64":
        assert report["frameworks"]["torch"]["fastmath_route"] == "autocast-bf16"
        assert report["frameworks"]["tensorflow"]["bf16_rewrite"] is True
        onnx = report["frameworks"]["onnxruntime"]  # no bf16 option on x86: says so, measures fp32
        assert "no bf16 fast-math option" in onnx["note"] and onnx["bf16_fastmath_active"] is False
        assert onnx["max_rel_error"] < 1e-5 and "onnxruntime" not in report["verdict"]["active_in"]


def test_report_here_describes_the_cpu(default_report):
    cpu = default_report["cpu"]
    if cpu["architecture"] != "x86_64":
        pytest.skip("the x86 flags are checked on x86")
    flags = set(Path("/proc/cpuinfo").read_text().split())
    assert cpu["bf16"] == bool(flags & {"avx512_bf16", "amx_bf16"})
    assert ("avx2" in cpu["features"]) == ("avx2" in flags)


def test_requested_fast_math_without_bf16_hardware_reads_inactive():
    """The fpmath attribute is asked for, yet the arithmetic stays fp32 on a CPU without bf16."""
    if HAS_BF16:
        pytest.skip("this CPU has bf16: fast-math is really active here")
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




def test_log_report_cancelled_leaves_no_process(caplog):
    """Shutdown during the report: the child and its probes are killed, none left behind."""

    async def scenario():
        task = asyncio.create_task(accel_log.log_report(logging.getLogger("test")))
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


# ------------------------------------------------------------------ the served model path


@pytest.fixture(scope="module")
def torchscript_model(tmp_path_factory):
    """A TorchScript MLP trained on generated data, its test rows, and its float64 answers."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # OpenMP threads wait on each other for long when the cores are shared
    try:
        torch.manual_seed(0)
        rng = np.random.default_rng(0)
        x = rng.standard_normal((512, 64)).astype(np.float32)
        y = np.tanh(x @ rng.standard_normal((64, 8))).astype(np.float32)
        network = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 8))
        optimizer = torch.optim.Adam(network.parameters(), lr=1e-2)
        for _ in range(50):
            loss = torch.nn.functional.mse_loss(network(torch.from_numpy(x)), torch.from_numpy(y))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        directory = tmp_path_factory.mktemp("bf16-model")
        network.eval()
        with torch.no_grad():
            torch.jit.trace(network, torch.from_numpy(x[:1])).save(str(directory / "model.pt"))
            rows = x[:64]
            exact = network.double()(torch.from_numpy(rows).double()).numpy()
    finally:
        torch.set_num_threads(threads)
    return directory, rows, exact


@pytest.mark.parametrize("switch", ["false", pytest.param("true", marks=needs_bf16)])
def test_served_torchscript_answers_in_bf16_only_with_the_switch(start_server, torchscript_model, switch):
    """Over HTTP through the real server and its worker: fp32-exact answers with the switch off,
    answers off by a bf16-sized error (not more) with it on."""
    directory, rows, exact = torchscript_model
    server = start_server(MODEL_SERVER_MODEL_DIR=directory, MODEL_SERVER_BF16_FASTMATH=switch, MODEL_SERVER_INTRA_OP_THREADS="1")
    answer = server.client.post("/invocations", content=npy(rows),
                                headers={"Content-Type": "application/x-npy", "Accept": "application/x-npy"})
    assert answer.status_code == 200, answer.text
    served = np.load(io.BytesIO(answer.content))
    assert served.dtype == np.float32 and served.shape == exact.shape
    error = probes.relative_error(served, exact)
    if switch == "true":
        assert 1e-4 < error < 2e-2, error
    else:
        assert error < 1e-5, error
