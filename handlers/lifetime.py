"""Child processes die with their parent.

Linux's ``PR_SET_PDEATHSIG`` asks the kernel to SIGKILL this process when the thread that
started it ends, so nothing the server starts (a worker, a probe, a pip install of a model's
requirements) outlives it, even when no thread of the child is free to notice. Called first
thing in the child (or as a ``preexec_fn``); a no-op where the call is missing (not Linux/glibc).
"""

import ctypes
import signal

PR_SET_PDEATHSIG = 1

try:
    _LIBC: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:
    _LIBC = None


def die_with_parent() -> None:
    if _LIBC is None:
        return
    try:
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except AttributeError:
        pass
