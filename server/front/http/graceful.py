"""uvicorn's server, with the exit the platform expects from a SIGTERM."""

import signal
from types import FrameType

import uvicorn


class GracefulServer(uvicorn.Server):
    """A SIGTERM it has drained and shut down for ends the process with exit code 0, rather than
    being raised again once the server is done.

    The platform stops a container with SIGTERM and reads a clean stop from the exit code.
    uvicorn re-raises the signal after its shutdown: outside a container that killed the process
    (status 143); as PID 1 the kernel drops it; under qemu-user (the emulated arm64 image) the
    emulator waited for that signal for ever and the container never exited."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        captured = getattr(self, "_captured_signals", None)  # uvicorn's record of what to re-raise
        if sig == signal.SIGTERM and isinstance(captured, list) and sig in captured:
            captured.remove(sig)
