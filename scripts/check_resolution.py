"""Do the pinned runtime sets resolve to binary wheels for each image's platform? No Docker needed.

    python scripts/check_resolution.py [--arch x86_64] [--arch aarch64] [-r requirements/runtime.txt]

For each architecture pip resolves the pins, without installing anything, as it would inside
that image: ``pip install --dry-run --ignore-installed --only-binary=:all: --platform
manylinux_2_{17..36}_ARCH --python-version 3.11 --implementation cp --abi cp311 --report``
(glibc 2.36 is Debian bookworm's, the images' base). Then it checks that every pin resolved to
its own version, that each image gets its own TensorFlow, and warns of anything unpinned that
came along (``--strict-pins`` fails on it).

Environment markers: pip evaluates them against the interpreter that runs it, not against
``--platform``, so on an x86 machine ``tensorflow-cpu; platform_machine == "x86_64"`` would be
chosen for arm64 too. pip runs here in a child whose ``platform.machine()`` answers the target
architecture, so the markers of runtime.txt, and those inside the packages, are the target's.

Indexes: the one pip is pointed at by PIP_INDEX_URL (default PyPI), plus TORCH_INDEX_URL when
set, as the images use it. pip's configuration files and PIP_FIND_LINKS are ignored, so that a
wheel lying on a developer's disk cannot hide one the index lacks. Without TORCH_INDEX_URL, PyPI's
torch is a CUDA build on both architectures: its nvidia-*/cuda-*/triton wheels are reported,
not failed, because the images take the CPU build from TORCH_INDEX_URL instead.

Packages PyPI has only as source (SOURCE_ONLY) are left out of the platform resolution; each
is built once here and must be pure Python (a ``py3-none-any`` wheel), with its dependencies
satisfied by every architecture's resolved set.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PYTHON_VERSION = "3.11"
GLIBC = (2, 36)  # Debian bookworm
SOURCE_ONLY = {"sagemaker-inference"}  # keep in step with --no-binary in scripts/install.sh
TENSORFLOW = {"x86_64": "tensorflow-cpu", "aarch64": "tensorflow"}
CUDA_PREFIXES = ("nvidia-", "cuda-", "triton")

# pip, with platform.machine() answering the target architecture (for environment markers).
PIP_FOR = """
import platform, sys
platform.machine = lambda: {arch!r}
from pip._internal.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def pip_environment() -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX", "PIP_CONSTRAINT", "PIP_TARGET")}
    env["PIP_CONFIG_FILE"] = os.devnull  # pip then reads no configuration file at all
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def index_options(torch_index: str | None) -> list[str]:
    return ["--extra-index-url", torch_index] if torch_index else []


def target_environment(arch: str) -> dict:
    env = default_environment()
    env.update(platform_machine=arch, platform_system="Linux", sys_platform="linux", os_name="posix",
               python_version=PYTHON_VERSION, implementation_name="cpython",
               platform_python_implementation="CPython")
    if not env["python_full_version"].startswith(PYTHON_VERSION + "."):
        env["python_full_version"] = PYTHON_VERSION + ".0"
    return env


def read_requirements(path: Path) -> list[Requirement]:
    """The requirements of a pip requirements file, following ``-r``; comments and options dropped."""
    found = []
    for raw in path.read_text().splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if not line:
            continue
        if line.startswith(("-r ", "--requirement ")):
            found += read_requirements(path.parent / line.split(None, 1)[1])
        elif not line.startswith("-"):
            found.append(Requirement(line))
    return found


def pins_for(requirements: list[Requirement], arch: str) -> dict[str, Requirement]:
    env = target_environment(arch)
    return {canonicalize_name(r.name): r for r in requirements if r.marker is None or r.marker.evaluate(env)}


def platforms(arch: str) -> list[str]:
    tags = [f"manylinux_{GLIBC[0]}_{minor}_{arch}" for minor in range(GLIBC[1], 16, -1)]
    return tags + [f"manylinux2014_{arch}"]


def resolve(arch: str, requirements_file: Path, torch_index: str | None, workdir: Path) -> dict:
    """pip's dry-run report for ``arch``, or the reason it has none."""
    report = workdir / f"report-{arch}.json"
    command = [sys.executable, "-c", PIP_FOR.format(arch=arch), "install", "--dry-run", "--ignore-installed",
               # metadata by HTTP range requests where the index has no PEP 658 metadata files
               "--use-feature=fast-deps",
               "--quiet", "--no-input", "--only-binary=:all:", "--python-version", PYTHON_VERSION,
               "--implementation", "cp", "--abi", "cp" + PYTHON_VERSION.replace(".", ""),
               *[option for tag in platforms(arch) for option in ("--platform", tag)],
               *index_options(torch_index), "--report", str(report), "-r", str(requirements_file),
               "--target", str(workdir / f"target-{arch}")]  # older pips want --target with --platform
    started = time.monotonic()
    done = subprocess.run(command, env=pip_environment(), capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0 and "fast-deps" in done.stderr:  # a pip that no longer has the feature
        command.remove("--use-feature=fast-deps")
        done = subprocess.run(command, env=pip_environment(), capture_output=True, text=True, stdin=subprocess.DEVNULL)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        return {"error": (done.stderr or done.stdout).strip()[-2000:], "seconds": seconds}
    return {"report": json.loads(report.read_text()), "seconds": seconds}


def build_source_only(requirements: list[Requirement], torch_index: str | None, workdir: Path) -> dict:
    """Build each SOURCE_ONLY pin into a wheel: name -> (wheel file name, requires_dist) or error."""
    results = {}
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        if name not in SOURCE_ONLY:
            continue
        out = workdir / f"wheel-{name}"
        done = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--no-input", "--only-binary=:all:",
             f"--no-binary={name}", *index_options(torch_index), "-w", str(out), str(requirement)],
            env=pip_environment(), capture_output=True, text=True, stdin=subprocess.DEVNULL,
        )
        wheels = sorted(out.glob("*.whl")) if out.is_dir() else []
        if done.returncode != 0 or not wheels:
            results[name] = {"error": (done.stderr or done.stdout).strip()[-1500:]}
            continue
        import zipfile

        with zipfile.ZipFile(wheels[0]) as wheel:
            meta = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
            requires = [line.split(":", 1)[1].strip() for line in wheel.read(meta).decode().splitlines()
                        if line.startswith("Requires-Dist:")]
        results[name] = {"wheel": wheels[0].name, "requires": requires}
    return results


def check_arch(arch: str, result: dict, pins: dict[str, Requirement], torch_index: str | None,
               source_only: dict, strict_pins: bool = False) -> tuple[list[str], list[str]]:
    """(failures, notes) for one architecture's resolution."""
    if "error" in result:
        return [f"{arch}: pip could not resolve the pins to {arch} wheels:\n{result['error']}"], []
    failures, notes = [], []
    resolved = {}
    for item in result["report"]["install"]:
        name = canonicalize_name(item["metadata"]["name"])
        resolved[name] = Version(item["metadata"]["version"])
        url = item["download_info"]["url"]
        if not url.split("#")[0].endswith(".whl"):
            failures.append(f"{arch}: {name} would be built from source ({url.rsplit('/', 1)[-1]})")
    platform_pins = {n: r for n, r in pins.items() if n not in SOURCE_ONLY}
    for name, requirement in platform_pins.items():
        if name not in resolved:
            failures.append(f"{arch}: {requirement} is pinned but was not resolved")
        elif not requirement.specifier.contains(resolved[name], prereleases=True):
            failures.append(f"{arch}: {name} resolved to {resolved[name]}, not {requirement.specifier}")
    extra = sorted(set(resolved) - set(platform_pins))
    cuda = [n for n in extra if n.startswith(CUDA_PREFIXES)]
    unpinned = [n for n in extra if n not in cuda]
    if unpinned:  # the install still works, but takes whatever version is newest that day
        message = f"{arch}: resolved but not pinned in the requirements: " + ", ".join(
            f"{n}=={resolved[n]}" for n in unpinned)
        (failures if strict_pins else notes).append(message if strict_pins else "WARNING " + message)
    if cuda and arch == "aarch64":
        failures.append(f"{arch}: PyPI's torch=={resolved.get('torch')} for aarch64 is a CUDA build (brought "
                        f"{', '.join(cuda)}); pin the newest release whose aarch64 wheel is a CPU build")
    elif cuda and torch_index:
        failures.append(f"{arch}: torch is still a CUDA build with TORCH_INDEX_URL set (brought {', '.join(cuda)})")
    elif cuda:
        notes.append(f"{arch}: PyPI's torch=={resolved.get('torch')} is a CUDA build ({len(cuda)} nvidia/cuda/triton "
                     "wheels); the images take the CPU build from TORCH_INDEX_URL")
    elif "torch" in resolved:
        notes.append(f"{arch}: torch=={resolved['torch']}, CPU-only (no nvidia/cuda/triton wheels)")
    wanted, other = TENSORFLOW[arch], TENSORFLOW["aarch64" if arch == "x86_64" else "x86_64"]
    if wanted not in resolved or other in resolved:
        failures.append(f"{arch}: expected {wanted} (and not {other}) in the resolved set")
    env = target_environment(arch)
    for name, built in source_only.items():
        for line in built.get("requires", []):
            requirement = Requirement(line)
            if requirement.marker is not None and not requirement.marker.evaluate({**env, "extra": ""}):
                continue
            dep = canonicalize_name(requirement.name)
            if dep not in resolved or not requirement.specifier.contains(resolved[dep], prereleases=True):
                failures.append(f"{arch}: {name} needs {requirement}, resolved {resolved.get(dep, 'nothing')}")
    return failures, notes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", action="append", choices=sorted(TENSORFLOW), help="default: both")
    parser.add_argument("-r", "--requirements", type=Path, default=ROOT / "requirements" / "runtime.txt")
    parser.add_argument("--strict-pins", action="store_true", help="fail, not warn, on unpinned packages")
    args = parser.parse_args(argv)
    arches = args.arch or sorted(TENSORFLOW, reverse=True)
    torch_index = os.environ.get("TORCH_INDEX_URL") or None
    requirements = read_requirements(args.requirements)
    import pip

    if Version(pip.__version__) < Version("24"):
        print(f"note: pip {pip.__version__} downloads every wheel even in a dry run (GBs here); "
              "requirements/dev.txt pins a newer pip, which reads metadata only")
    failures = []

    with tempfile.TemporaryDirectory(prefix="resolve-") as tmp:
        workdir = Path(tmp)
        platform_file = workdir / "platform-requirements.txt"
        platform_file.write_text("".join(f"{r}\n" for r in requirements if canonicalize_name(r.name) not in SOURCE_ONLY))
        started = time.monotonic()
        with ThreadPoolExecutor(len(arches) + 1) as pool:
            futures = {arch: pool.submit(resolve, arch, platform_file, torch_index, workdir) for arch in arches}
            source_future = pool.submit(build_source_only, requirements, torch_index, workdir)
            results = {arch: future.result() for arch, future in futures.items()}
            source_only = source_future.result()

    for name, built in source_only.items():
        if "error" in built:
            failures.append(f"{name}: could not build it from source:\n{built['error']}")
        elif not built["wheel"].endswith("-none-any.whl"):
            failures.append(f"{name}: built {built['wheel']}, not pure Python: the images have no compiler")
        else:
            print(f"{name}: source only on the index; builds as {built['wheel']} (pure Python)")
    for arch in arches:
        result = results[arch]
        arch_failures, notes = check_arch(arch, result, pins_for(requirements, arch), torch_index, source_only,
                                           args.strict_pins)
        failures += arch_failures
        count = len(result.get("report", {}).get("install", []))
        print(f"{arch}: {'FAILED' if arch_failures else 'ok'}, {count} wheels resolved in {result['seconds']:.1f}s")
        for note in notes:
            print(f"  {note}")
    print(f"resolution of {', '.join(arches)}: {time.monotonic() - started:.1f}s"
          + ("" if torch_index else " (TORCH_INDEX_URL not set: torch checked as PyPI serves it)"))
    for failure in failures:
        print(f"FAIL {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
