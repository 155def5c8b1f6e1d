"""A real memory cgroup made by a test, to run a server under a kernel-enforced ceiling.

cgroup v1's memory controller is used where it is mounted and writable (as root), else v2's
where the unified hierarchy has the memory controller; ``MemoryCgroup.make`` says why not
otherwise, for a skip. The server joins it through ``wrapper``: a shell that writes its own pid
into ``cgroup.procs`` and then execs the server, so that the front and every worker it starts
are inside from their first allocation.
"""

import os
import time
import uuid
from pathlib import Path

from server.front.budget import cgroup_mounts


class MemoryCgroup:
    def __init__(self, path: Path, version: int):
        self.path = path
        self.version = version

    @classmethod
    def make(cls, limit_bytes: int) -> "MemoryCgroup | str":
        """A new cgroup limited to ``limit_bytes`` (swap included), or why none can be made here."""
        if os.geteuid() != 0:
            return "making a memory cgroup needs root"
        try:
            v1, v2 = cgroup_mounts(Path("/proc/self/mountinfo").read_text())
        except OSError as err:
            return f"no /proc/self/mountinfo: {err}"
        name = f"model-server-test-{uuid.uuid4().hex[:8]}"
        reasons = []
        if v1 is not None:
            made = cls._make(Path(v1.point) / name, 1, limit_bytes)
            if isinstance(made, MemoryCgroup):
                return made
            reasons.append(f"v1: {made}")
        if v2 is not None:
            base = Path(v2.point)
            try:
                if "memory" not in (base / "cgroup.controllers").read_text().split():
                    raise OSError("the unified hierarchy has no memory controller")
                if "memory" not in (base / "cgroup.subtree_control").read_text().split():
                    (base / "cgroup.subtree_control").write_text("+memory")
            except OSError as err:
                reasons.append(f"v2: {err}")
            else:
                made = cls._make(base / name, 2, limit_bytes)
                if isinstance(made, MemoryCgroup):
                    return made
                reasons.append(f"v2: {made}")
        return "; ".join(reasons) or "no cgroup memory controller is mounted"

    @classmethod
    def _make(cls, path: Path, version: int, limit_bytes: int) -> "MemoryCgroup | str":
        try:
            path.mkdir()
        except OSError as err:
            return f"cannot make {path.name}: {err.strerror}"
        cgroup = cls(path, version)
        try:
            if version == 1:
                (path / "memory.limit_in_bytes").write_text(str(limit_bytes))
                cgroup._try_write("memory.memsw.limit_in_bytes", str(limit_bytes))  # no swapping past it
            else:
                (path / "memory.max").write_text(str(limit_bytes))
                cgroup._try_write("memory.swap.max", "0")
        except OSError as err:
            cgroup.remove()
            return f"cannot set its limit: {err.strerror}"
        return cgroup

    def _try_write(self, name: str, text: str) -> None:
        try:
            (self.path / name).write_text(text)
        except OSError:
            pass  # no swap accounting here: nothing to bound

    @property
    def wrapper(self) -> tuple[str, ...]:
        """A command prefix that runs the rest of the command inside this cgroup."""
        return ("sh", "-c", 'echo $$ > "$0" && exec "$@"', str(self.path / "cgroup.procs"))

    def _stat(self) -> dict[str, int]:
        pairs = (line.split() for line in (self.path / "memory.stat").read_text().splitlines())
        return {p[0]: int(p[1]) for p in pairs if len(p) == 2}

    def usage(self) -> tuple[int, int]:
        """(charged, in use): all memory charged to the cgroup, and that less the page cache the
        kernel can drop at once (the working set, as the container runtimes count it)."""
        if self.version == 1:
            charged = int((self.path / "memory.usage_in_bytes").read_text())
            inactive = self._stat().get("total_inactive_file", 0)
        else:
            charged = int((self.path / "memory.current").read_text())
            inactive = self._stat().get("inactive_file", 0)
        return charged, max(0, charged - inactive)

    def oom_kills(self) -> int:
        """Processes the kernel's OOM killer took in this cgroup."""
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        for line in (self.path / name).read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def remove(self) -> None:
        """Move whatever is left to the hierarchy's root, then remove the cgroup."""
        root = self.path.parent / "cgroup.procs"
        for pid in self.pids():
            try:
                root.write_text(str(pid))
            except OSError:
                pass
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.1)  # the last exits are still being accounted
        self.path.rmdir()
