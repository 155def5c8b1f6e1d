"""Run a built image as the platform would and drive it over HTTP on loopback; no container engine.

    python scripts/image_drive.py IMAGE [--emulate-graviton3]        (root; buildah)

The image's root filesystem (``buildah from`` + ``buildah mount``) is started in its own mount
and PID namespaces (``unshare``), chrooted, with exactly the image's entry point, command,
environment, user and working directory, plus what ``docker run -e`` would add here: the port
(SAGEMAKER_BIND_TO_PORT, a free one) and loopback as the address. The server is PID 1 there, as in a
container. Example models built by the host's venv (models.make_examples) are bind-mounted
read-only at /opt/ml/model and /opt/ml/models. Checked, each printed as ok/FAIL:

- the image config: the SageMaker labels, the exec-form entry point and ``serve``;
- single model: /ping, /invocations, the acceleration report line (its verdict per framework
  printed), SIGTERM -> exit code 0;
- multi-model, all six frameworks: load, invoke, unload each; SIGTERM -> exit code 0;
- the image's size beside the previous build's (IMAGE-previous, kept by scripts/image_build.sh).

``--emulate-graviton3``: an arm64 image under qemu-user (binfmt_misc): QEMU_CPU asks for 256-bit SVE
and BF16, and a Neoverse-V1 /proc/cpuinfo is bound over the real one (onnxruntime reads it
and crashes on an x86 one). Ends with ``N passed, M failed``; exit code 1 on any failure.
"""

import argparse
import json
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from models.make_examples import frameworks  # noqa: E402

# one example model of each framework and a request it answers: the suite's six-framework table
from tests.test_all_frameworks import FRAMEWORKS as SIX  # noqa: E402
from tests.test_all_frameworks import REQUESTS  # noqa: E402

LABELS = {"com.amazonaws.sagemaker.capabilities.multi-models": "true",
          "com.amazonaws.sagemaker.capabilities.accept-bind-to-port": "true"}
# Graviton3 (Neoverse-V1) as the kernel shows it: what onnxruntime's cpuinfo parser wants to see.
GRAVITON3_CPUINFO = Path(__file__).with_name("graviton3.cpuinfo")
QEMU_CPU = "max,sve256=on"  # qemu's max CPU has BF16; SVE vector length 256 bits, as Graviton3

results: list[tuple[bool, str]] = []
emulated = False  # set by --emulate-graviton3: longer start-up allowances


def check(ok: bool, what: str) -> bool:
    results.append((bool(ok), what))
    print(("ok    " if ok else "FAIL  ") + what, flush=True)
    return bool(ok)


def sh(*args: str) -> str:
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Container:
    """One run of the image's root filesystem: PID 1 of fresh mount and PID namespaces."""

    def __init__(self, rootfs: str, config: dict, env: dict, binds: dict, log: Path, cpuinfo: Path | None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        self.stop_seconds: float | None = None
        image_env = dict(item.split("=", 1) for item in config.get("Env") or [])
        image_env.update(env, SAGEMAKER_BIND_TO_PORT=str(self.port), MODEL_SERVER_HOST="127.0.0.1")
        if cpuinfo:
            image_env["QEMU_CPU"] = QEMU_CPU
        user = config.get("User") or "0:0"
        argv = (config.get("Entrypoint") or []) + (config.get("Cmd") or [])
        mounts = ['mount -t proc proc "$R/proc"', 'mount --rbind /dev "$R/dev"', 'mount --rbind /sys "$R/sys"']
        if cpuinfo:
            mounts.append(f'mount --bind {shlex.quote(str(cpuinfo))} "$R/proc/cpuinfo"')
        for source, target in binds.items():
            mounts.append(f'mount --bind -o ro {shlex.quote(str(source))} "$R"{shlex.quote(target)}')
        run = ["chroot", f"--userspec={user}", "$R", "/usr/bin/env", "-i",
               "-C", config.get("WorkingDir") or "/"] + [f"{k}={v}" for k, v in image_env.items()] + argv
        script = "set -e; " + "; ".join(mounts) + "; exec " + " ".join(
            a if a == "$R" else shlex.quote(a) for a in run)
        self.log_file = open(log, "wb")
        self.process = subprocess.Popen(
            ["unshare", "--mount", "--pid", "--fork", "--kill-child", "--propagation", "private",
             "sh", "-c", script, "sh"], env={"R": rootfs, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            stdout=self.log_file, stderr=subprocess.STDOUT)
        self.client = httpx.Client(base_url=self.url, timeout=600 if cpuinfo else 120)

    def log(self) -> str:
        if not self.log_file.closed:
            self.log_file.flush()
        return self.log_path.read_text(errors="replace")

    def wait_ping(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if self.client.get("/ping", timeout=5).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        return False

    def pid1(self) -> int | None:
        children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.process.pid)],
                                  capture_output=True, text=True).stdout.split()
        return int(children[0]) if children else None

    def stop(self, timeout: float = 60) -> int | None:
        """SIGTERM to the server (PID 1 in its namespace), as the platform stops a container."""
        self.stop_seconds = None
        started = time.monotonic()
        pid = self.pid1()
        if pid:
            subprocess.run(["kill", "-TERM", str(pid)], check=False)
        try:
            code = self.process.wait(timeout)
            self.stop_seconds = time.monotonic() - started
        except subprocess.TimeoutExpired:
            self.process.kill()  # --kill-child takes the namespace down with it
            self.process.wait()
            code = None
        self.client.close()
        self.log_file.close()
        return code


def print_tail(container: Container, lines: int = 40, width: int = 300) -> None:
    """The end of the server's log, long lines (the report's JSON) cut short."""
    for line in container.log().splitlines()[-lines:]:
        print("      | " + (line if len(line) <= width else line[:width] + " ..."))


def report_line(container: Container, timeout: float) -> dict | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and container.process.poll() is None:
        for line in container.log().splitlines():
            if "acceleration report {" in line:
                return json.loads(line[line.index("{"):])
        time.sleep(1)
    return None


def print_report(report: dict) -> None:
    print("      verdict:", report.get("verdict", {}).get("summary"))
    for name, fw in report.get("frameworks", {}).items():
        keys = ("version", "gemm_kernel", "fpmath_attribute", "max_rel_error", "arithmetic")
        print(f"      {name}: " + ", ".join(f"{k}={fw[k]}" for k in keys if k in fw))


def drive_single(rootfs: str, config: dict, models: Path, work: Path, cpuinfo: Path | None) -> None:
    container = Container(rootfs, config, {}, {models / "sklearn-iris" / "model": "/opt/ml/model"},
                          work / "single.log", cpuinfo)
    try:
        if not check(container.wait_ping(900 if emulated else 180), "single model: /ping 200"):
            print_tail(container)
            return
        answer = container.client.post("/invocations", content=b"5.1,3.5,1.4,0.2\n", headers={"Content-Type": "text/csv"})
        check(answer.status_code == 200 and answer.content.strip(), f"single model: /invocations {answer.status_code} {answer.text[:80]!r}")
        report = report_line(container, 1800 if emulated else 300)
        if check(report is not None, "acceleration report line in the start-up log"):
            print_report(report)
    finally:
        code = container.stop(600 if emulated else 60)
    check(code == 0, f"single model: SIGTERM -> exit code {code} ({container.stop_seconds or 0:.1f}s)")


def drive_multi(rootfs: str, config: dict, models: Path, work: Path, cpuinfo: Path | None) -> None:
    container = Container(rootfs, config, {"SAGEMAKER_MULTI_MODEL": "true", "MODEL_SERVER_ACCEL_REPORT": "false"},
                          {models: "/opt/ml/models"}, work / "multi.log", cpuinfo)
    try:
        if not check(container.wait_ping(900 if emulated else 180), "multi-model: /ping 200"):
            print_tail(container)
            return
        seen = set()
        for name, (body, content_type) in REQUESTS.items():
            started = time.monotonic()
            loaded = container.client.post("/models", json={"model_name": name, "url": f"/opt/ml/models/{name}/model"})
            answer = container.client.post(f"/models/{name}/invoke", content=body, headers={"Content-Type": content_type})
            framework = container.client.get(f"/models/{name}").json().get("framework") if loaded.status_code == 200 else None
            unloaded = container.client.delete(f"/models/{name}")
            seen.add(framework)
            check(loaded.status_code == 200 and answer.status_code == 200 and unloaded.status_code == 200,
                  f"multi-model: {framework or name} load {loaded.status_code}, invoke {answer.status_code}"
                  f" {answer.text[:60]!r}, unload {unloaded.status_code} ({time.monotonic() - started:.1f}s)")
        check(seen == set(SIX), f"multi-model: the six frameworks answered ({', '.join(sorted(map(str, seen)))})")
    finally:
        code = container.stop(600 if emulated else 60)
    check(code == 0, f"multi-model: SIGTERM -> exit code {code} ({container.stop_seconds or 0:.1f}s)")
    if code != 0:
        print_tail(container)


def image_size(tag: str) -> str | None:
    try:
        return json.loads(sh("buildah", "images", "--json", tag))[0]["size"]
    except (subprocess.CalledProcessError, IndexError, KeyError, json.JSONDecodeError):
        return None


def main() -> int:
    global emulated
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image")
    parser.add_argument("--emulate-graviton3", action="store_true")
    args = parser.parse_args()
    emulated = args.emulate_graviton3
    config = json.loads(sh("buildah", "inspect", "--type", "image", args.image))["OCIv1"]["config"]
    labels = config.get("Labels") or {}
    check(LABELS.items() <= labels.items(), f"labels {', '.join(f'{k}={labels.get(k)}' for k in LABELS)}")
    check(config.get("Entrypoint") == ["/opt/venv/bin/python", "-m", "server"] and config.get("Cmd") == ["serve"],
          f"entry point {config.get('Entrypoint')} command {config.get('Cmd')}")

    with tempfile.TemporaryDirectory(prefix="image-drive.") as tmp:
        work = Path(tmp)
        models = work / "models"
        started = time.monotonic()
        built = subprocess.run([sys.executable, "-m", "models.make_examples", "--out", str(models), "--only", ",".join(
            f for f in frameworks() if f in SIX)], cwd=ROOT, capture_output=True, text=True)
        if built.returncode:
            sys.exit("example models failed:\n" + built.stdout + built.stderr)
        print(f"      example models built in {time.monotonic() - started:.0f}s")
        cpuinfo = GRAVITON3_CPUINFO if emulated else None
        container = sh("buildah", "from", "--pull=never", args.image)
        try:
            rootfs = sh("buildah", "mount", container)
            for drive in (drive_single, drive_multi):
                started = time.monotonic()
                drive(rootfs, config, models, work, cpuinfo)
                print(f"      ({drive.__name__}: {time.monotonic() - started:.0f}s)")
        finally:
            subprocess.run(["buildah", "rm", container], capture_output=True, check=False)
    size, previous = image_size(args.image), image_size(args.image + "-previous")
    print(f"      image size {size} (previous build: {previous or 'none'})")
    passed = sum(ok for ok, _ in results)
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
