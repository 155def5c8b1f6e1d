"""What a worker is running right now, in memory the front can still read after the worker dies.

When a worker dies, the front must know which models were running in it (they may have killed
it; two such deaths quarantine a model) and which only had requests waiting in its inbox (they
are innocent, and must not be quarantined for a neighbour's crash). The frames it sent and has
no answer to cannot tell these apart; this table can. It is a small shared mapping: one row per
worker thread, holding the id of the frame that thread is running (0 when idle). The worker
writes a row as it starts and ends each piece of work, a store to memory and no system call;
the front reads the rows once, when the worker has died.
"""

import mmap
import os
import struct
import tempfile
import threading

ROW = struct.Struct("<Q")
LOAD_ROWS = 64  # loads under way at once that are recorded (abandoned ones may run past the front's limit)


def _size(serve_rows: int) -> int:
    return (serve_rows + LOAD_ROWS) * ROW.size


def create(serve_rows: int) -> tuple[mmap.mmap, int]:
    """A zeroed table for a worker with ``serve_rows`` serving threads: (the front's mapping,
    the descriptor to hand the worker)."""
    size = _size(serve_rows)
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("worker-running", 0)
    else:  # not Linux: an unlinked temporary file does the same
        with tempfile.TemporaryFile() as backing:
            fd = os.dup(backing.fileno())
    os.ftruncate(fd, size)
    return mmap.mmap(fd, size), fd


def running_ids(table: mmap.mmap) -> set[int]:
    """The ids of the frames the worker's threads were running (read after it has died)."""
    return {value for (value,) in ROW.iter_unpack(table) if value}


class RunningTable:
    """The worker's side: serving thread ``i`` owns row ``i``; a load claims a free load row."""

    def __init__(self, fd: int, serve_rows: int):
        self.table = mmap.mmap(fd, _size(serve_rows))
        os.close(fd)
        self.free_load_rows = list(range(serve_rows, serve_rows + LOAD_ROWS))
        self.lock = threading.Lock()

    def mark(self, row: int, frame_id: int) -> None:
        ROW.pack_into(self.table, row * ROW.size, frame_id)

    def clear(self, row: int) -> None:
        ROW.pack_into(self.table, row * ROW.size, 0)

    def claim(self, frame_id: int) -> int | None:
        """A load row holding ``frame_id``; None when every one is taken (the load goes unrecorded)."""
        with self.lock:
            if not self.free_load_rows:
                return None
            row = self.free_load_rows.pop()
        self.mark(row, frame_id)
        return row

    def release(self, row: int | None) -> None:
        if row is None:
            return
        self.clear(row)
        with self.lock:
            self.free_load_rows.append(row)
