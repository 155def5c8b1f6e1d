"""The acceleration report's one line in the front's start-up log (``MODEL_SERVER_ACCEL_REPORT``).

The front never imports a framework, so it runs ``python -m server accel-report`` in a child
process group of its own, off the event loop, and logs what the child prints."""

import asyncio
import logging
import os
import signal
import sys

from server.shared.paths import PROJECT_ROOT


async def log_report(logger: logging.Logger, timeout: float = 600.0) -> None:
    """Run the report in a child process, off the event loop, and log it as one line.

    The child and its probes form their own process group, killed when this task is cancelled
    (the service stops) or times out, so the report never leaves a process behind.
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", "accel-report", "--compact", "--nice", "10",
        cwd=PROJECT_ROOT, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, start_new_session=True,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        logger.warning("acceleration report: no answer within %.0fs, stopped", timeout)
        return
    finally:
        if process.returncode is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            await process.wait()
    if process.returncode != 0:
        tail = " | ".join(stderr.decode(errors="replace").strip().splitlines()[-3:])
        logger.warning("acceleration report failed (exit code %s): %s", process.returncode, tail)
        return
    logger.info("acceleration report %s", stdout.decode(errors="replace").strip())


