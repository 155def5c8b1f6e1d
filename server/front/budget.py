"""The memory budget: answer 507 before a load would run the container out of memory.

The limit is MODEL_SERVER_MEMORY_LIMIT_MB, else the container's cgroup limit, else the machine's
memory. A load is refused when the server's own processes, plus what loads under way have
reserved, plus this model's estimate, would cross the limit less a headroom — or when the
machine itself has less than that free. The estimate is the model's size on disk times its
framework's factor, plus a new worker's cost when the framework has none yet.
"""

import logging
import os
from collections.abc import Iterable
from pathlib import Path

import psutil

from server.shared.rss import tree_rss

log = logging.getLogger("memory")


def cgroup_limit() -> int | None:
    """The cgroup (v2 or v1) memory limit of this container, if it has one."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:
            return int(text)
    return None


def directory_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


class MemoryBudget:
    def __init__(self, limit_bytes: int | None, headroom_bytes: int):
        self.limit = limit_bytes or cgroup_limit() or psutil.virtual_memory().total
        self.headroom = headroom_bytes
        self.reserved = 0  # estimates of loads under way, not yet visible in RSS

    def shortfall(self, need: int, pids: Iterable[int | str]) -> str | None:
        """Why ``need`` more bytes do not fit, or None when they do."""
        used = tree_rss(pids) + self.reserved
        allowed = self.limit - self.headroom
        if used + need > allowed:
            return (
                f"not enough memory to load the model: it needs about {need / 2**20:.0f} MB, "
                f"{max(0, allowed - used) / 2**20:.0f} MB of {self.limit / 2**20:.0f} MB remain"
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
