"""What a worker is running right now, in memory the front can still read after the worker dies.

When a worker dies, the front must know which models were running in it (they may have killed
it; two such deaths quarantine a model) and which only had requests waiting in its inbox (they
are innocent, and must not be quarantined for a neighbour's crash). The frames it sent and has
no answer to cannot tell these apart; this table can. It is a small shared mapping: one slot per
worker thread, holding the id of the frame that thread is running (0 when idle). The worker
writes a slot as it starts and ends each piece of work, a store to memory and no system call;
the front reads the slots once, when the worker has died.
"""

import mmap
import os
import struct
import tempfile
import threading

SLOT = struct.Struct("<Q")
LOAD_SLOTS = 64  # loads under way at once that are recorded (abandoned ones may run past the front's limit)


def _size(serve_slots: int) -> int:
    return (serve_slots + LOAD_SLOTS) * SLOT.size


def create(serve_slots: int) -> tuple[mmap.mmap, int]:
    """A zeroed table for a worker with ``serve_slots`` serving threads: (the front's mapping,
    the descriptor to hand the worker)."""
    size = _size(serve_slots)
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("worker-running", 0)
    else:  # not Linux: an unlinked temporary file does the same
        with tempfile.TemporaryFile() as backing:
            fd = os.dup(backing.fileno())
    os.ftruncate(fd, size)
    return mmap.mmap(fd, size), fd


def running_ids(table: mmap.mmap) -> set[int]:
    """The ids of the frames the worker's threads were running (read after it has died)."""
    return {value for (value,) in SLOT.iter_unpack(table) if value}


class RunningTable:
    """The worker's side: serving thread ``i`` owns slot ``i``; a load claims a free load slot."""

    def __init__(self, fd: int, serve_slots: int):
        self.table = mmap.mmap(fd, _size(serve_slots))
        os.close(fd)
        self.free_load_slots = list(range(serve_slots, serve_slots + LOAD_SLOTS))
        self.lock = threading.Lock()

    def mark(self, slot: int, frame_id: int) -> None:
        SLOT.pack_into(self.table, slot * SLOT.size, frame_id)

    def clear(self, slot: int) -> None:
        SLOT.pack_into(self.table, slot * SLOT.size, 0)

    def claim(self, frame_id: int) -> int | None:
        """A load slot holding ``frame_id``; None when every one is taken (the load goes unrecorded)."""
        with self.lock:
            if not self.free_load_slots:
                return None
            slot = self.free_load_slots.pop()
        self.mark(slot, frame_id)
        return slot

    def release(self, slot: int | None) -> None:
        if slot is None:
            return
        self.clear(slot)
        with self.lock:
            self.free_load_slots.append(slot)
