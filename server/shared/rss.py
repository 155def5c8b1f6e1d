"""Resident memory read from /proc: the worker reports its own after each load, the front sums
the tree's for the memory budget. /proc's statm is read rather than psutil's richer calls
because it is read on every load and costs one small read."""

import os
from collections.abc import Iterable

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss(pid: int | str = "self") -> int:
    """Resident memory of one process (0 if it is gone): /proc's statm, read on every load."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as file:
            return int(file.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def tree_rss(pids: Iterable[int | str]) -> int:
    """Resident memory of the given processes, summed (missing ones count as zero)."""
    return sum(rss(pid) for pid in pids)
