"""The memory budget: answer 507 before a load would run the container out of memory.

The limit is MODEL_SERVER_MEMORY_LIMIT_MB, else the memory cgroup this process is in (the
tightest limit of it and its ancestors), else the machine's memory. A load is refused when the
server's own processes, plus what loads under way have reserved, plus this model's estimate,
would cross the limit less a headroom — or when the machine itself has less than that free. The
estimate is the model's size on disk times its framework's factor (or, for a directory loaded
before, what it took the last time, when that was more), plus a new worker's cost when the framework has
none yet. Each load reserves its estimate in the same step as the check, and holds it until the
load is measured or has failed, so that N loads started at once are judged as N; and each load
under way keeps a headroom of room for what it may take beyond its estimate (``admit``).

See docs/memory.md.
"""

import asyncio
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil

from handlers.errors import InsufficientMemory
from server.shared.rss import tree_rss

log = logging.getLogger("memory")

UNLIMITED = 2**60  # v1 writes "no limit" as the largest page-aligned signed 64-bit number
V1_ROOT_FILE = "/sys/fs/cgroup/memory/memory.limit_in_bytes"
V2_ROOT_FILE = "/sys/fs/cgroup/memory.max"


# ---------------------------------------------------------------------- the cgroup's limit (pure)


@dataclass(frozen=True)
class Mount:
    """A cgroup filesystem mount: ``root`` is the hierarchy's path mounted at ``point``."""

    root: str
    point: str


def own_cgroups(proc_self_cgroup: str) -> tuple[str | None, str | None]:
    """This process's memory cgroup paths from /proc/self/cgroup: (v1 ``N:...memory...:/path``,
    v2 ``0::/path``); None for a hierarchy the process is not listed in."""
    v1 = v2 = None
    for line in proc_self_cgroup.splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3:
            continue
        number, controllers, path = parts
        if number == "0" and controllers == "":
            v2 = path
        elif "memory" in controllers.split(","):
            v1 = path
    return v1, v2


def cgroup_mounts(mountinfo: str) -> tuple[Mount | None, Mount | None]:
    """The v1 memory controller's mount and the v2 (unified) mount, from /proc/self/mountinfo.

    A line is ``id parent dev root point options [optional fields] - fstype source superoptions``;
    v1's memory mount names ``memory`` among its super options."""
    v1 = v2 = None
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" not in fields or len(fields) < 5:
            continue
        tail = fields[fields.index("-") + 1:]
        if len(tail) < 3:
            continue
        mount = Mount(root=unescape(fields[3]), point=unescape(fields[4]))
        if tail[0] == "cgroup" and "memory" in tail[2].split(",") and v1 is None:
            v1 = mount
        elif tail[0] == "cgroup2" and v2 is None:
            v2 = mount
    return v1, v2


def unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes (``\\040``)."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def cgroup_directories(path: str, mount: Mount) -> list[str]:
    """The directories of a cgroup and of each of its ancestors visible under ``mount``, nearest
    first. A path outside the mount's root (a cgroup namespace, say) is the mount point's own."""
    if path == mount.root or path.startswith(mount.root.rstrip("/") + "/"):
        relative = path[len(mount.root.rstrip("/")):].strip("/")
    else:
        relative = ""
    parts = [p for p in relative.split("/") if p]
    return [os.path.join(mount.point, *parts[:depth]) for depth in range(len(parts), -1, -1)]


def parse_limit(text: str | None) -> int | None:
    """A limit file's value in bytes; None for ``max``, v1's huge "unlimited" numbers, or junk."""
    if text is None:
        return None
    text = text.strip()
    if not text.isdigit():
        return None
    value = int(text)
    return value if 0 < value < UNLIMITED else None


def tightest(texts: Iterable[str | None]) -> int | None:
    """The smallest finite limit among limit files' texts: a nested cgroup's effective limit."""
    limits = [limit for limit in map(parse_limit, texts) if limit is not None]
    return min(limits) if limits else None


Reader = Callable[[str], str | None]


def read_text(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError):
        return None


def cgroup_limit(read: Reader = read_text) -> tuple[int, str] | None:
    """The memory limit of the cgroup this process is in, with where it was read.

    v1 (a ``memory`` line in /proc/self/cgroup) is asked first, then v2: on a hybrid host the
    unified hierarchy often has no memory controller. Without /proc/self/cgroup or mountinfo
    (or when neither places the process), the root's files are the fallback: inside a container
    with a cgroup namespace of its own they are the container's."""
    v1_path, v2_path = own_cgroups(read("/proc/self/cgroup") or "")
    v1_mount, v2_mount = cgroup_mounts(read("/proc/self/mountinfo") or "")
    for path, mount, name in ((v1_path, v1_mount, "memory.limit_in_bytes"), (v2_path, v2_mount, "memory.max")):
        if path is None or mount is None:
            continue
        directories = cgroup_directories(path, mount)
        texts = {directory: read(os.path.join(directory, name)) for directory in directories}
        limit = tightest(texts.values())
        if limit is not None:
            where = next(d for d, t in texts.items() if parse_limit(t) == limit)
            return limit, os.path.join(where, name)
    for path in (V2_ROOT_FILE, V1_ROOT_FILE):
        if (limit := parse_limit(read(path))) is not None:
            return limit, path
    return None


# ---------------------------------------------------------------------- the budget


def directory_bytes(path: Path) -> int:
    """The size of a model directory's files, symlinked ones at their targets' size."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size  # a symlinked file loads as its target
            except OSError:
                pass
    return total


class Reservation:
    """One load's estimate, held in the budget from its check until the load is measured or
    fails. Releasing it twice is harmless (a load's error path may meet it after its success path)."""

    def __init__(self, budget: "MemoryBudget", need: int):
        self.budget = budget
        self.need = need
        self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self.budget._release(self.need)


class MemoryBudget:
    def __init__(self, limit_bytes: int | None, headroom_bytes: int, read: Reader = read_text):
        machine = psutil.virtual_memory().total
        found = None if limit_bytes else cgroup_limit(read)
        if limit_bytes:
            self.limit, self.source = limit_bytes, "MODEL_SERVER_MEMORY_LIMIT_MB"
        elif found is not None and found[0] < machine:
            self.limit, self.source = found[0], f"cgroup ({found[1]})"
        else:
            self.limit, self.source = machine, "the machine's memory"
        self.headroom = headroom_bytes
        self.reserved = 0  # estimates of loads under way, not yet visible in RSS
        self.loads = 0  # how many loads hold those reservations
        self._released = asyncio.Event()  # set (and replaced) at each release
        self.measured: dict[str, int] = {}  # a model directory -> the most it took once loaded
        log.info("memory limit %.0f MB (from %s), headroom %.0f MB", self.limit / 2**20, self.source, headroom_bytes / 2**20)

    def estimate(self, directory: str, from_files: int) -> int:
        """A load's estimate: from its files, or what the directory took when last loaded if that
        was more (a ``model_fn`` that allocates far beyond its files is known from its second load on)."""
        return max(from_files, self.measured.get(directory, 0))

    def remember(self, directory: str, taken: int) -> None:
        """What a load of ``directory`` took once loaded, for its next estimate. The latest, not
        the most: the worker measures its RSS growth, which a neighbour loading beside it inflates
        and memory kept from an earlier unload deflates; the next load measures it again."""
        self.measured.pop(directory, None)  # re-inserted last: the oldest go first past the bound
        self.measured[directory] = taken
        if len(self.measured) > 100_000:  # a bound for a pathological churn of new directories
            self.measured.pop(next(iter(self.measured)))

    def reserve(self, need: int, pids: Iterable[int | str]) -> Reservation:
        """Check that ``need`` more bytes fit and hold them, in one step (no await between): raises
        InsufficientMemory (507) when they do not fit."""
        shortfall = self._shortfall(need, tree_rss(pids))
        if shortfall:
            raise InsufficientMemory(shortfall)
        return self._hold(need)

    async def admit(self, need: int, pids: Callable[[], Iterable[int | str]]) -> Reservation:
        """``reserve``, and also keep room for what loads under way may take beyond their estimates.

        An estimate is a guess (a ``model_fn`` may allocate what no file announces), and the check
        after a load catches one load's excess only once it has happened: the headroom is what
        absorbs it. So each load under way is granted a headroom of its own: a load that would leave
        less room than that for the others waits until one of them is measured (or fails) and is
        judged again, with what it really took. Far from the limit loads run side by side; near it
        they run one at a time, and N loads started at once can never overshoot by N excesses."""
        while True:
            used = tree_rss(pids())
            shortfall = self._shortfall(need, used)
            if shortfall:
                raise InsufficientMemory(shortfall)
            crowded = used + self.reserved + need + self.headroom * self.loads > self.limit - self.headroom
            if not self.loads or not crowded:
                return self._hold(need)
            await self._released.wait()

    def _hold(self, need: int) -> Reservation:
        self.reserved += need
        self.loads += 1
        return Reservation(self, need)

    def _release(self, need: int) -> None:
        self.reserved -= need
        self.loads -= 1
        self._released.set()  # wake the loads waiting for room: they are judged again
        self._released = asyncio.Event()

    def shortfall(self, need: int, pids: Iterable[int | str]) -> str | None:
        """Why ``need`` more bytes do not fit, or None when they do."""
        return self._shortfall(need, tree_rss(pids))

    def _shortfall(self, need: int, rss: int) -> str | None:
        used = rss + self.reserved
        allowed = self.limit - self.headroom
        if used + need > allowed:
            pending = f", {self.loads} loads under way holding {self.reserved / 2**20:.0f} MB" if self.loads else ""
            return (
                f"not enough memory to load the model: it needs about {need / 2**20:.0f} MB, "
                f"{max(0, allowed - used) / 2**20:.0f} MB of {self.limit / 2**20:.0f} MB remain{pending}"
            )
        available = psutil.virtual_memory().available
        if available - need < self.headroom:
            return (
                f"not enough memory to load the model: it needs about {need / 2**20:.0f} MB, "
                f"the machine has {available / 2**20:.0f} MB free"
            )
        return None

    def overrun(self, pids: Iterable[int | str]) -> str | None:
        """Why the processes now hold more than the budget allows, or None while they do not."""
        used = tree_rss(pids) + self.reserved
        allowed = self.limit - self.headroom
        if used > allowed:
            return f"{used / 2**20:.0f} MB in use, more than the {allowed / 2**20:.0f} MB allowed of {self.limit / 2**20:.0f} MB"
        return None
