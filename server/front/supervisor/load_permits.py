"""How many loads a worker starts together, without letting a load that never ends hold the rest.

A worker runs each load on a thread of its own; the front lets ``MODEL_SERVER_LOAD_THREADS`` of
them start at once, so that loads arriving together do not all peak in CPU and memory at the
same time. A load still running after ``HOLD_SECONDS`` gives its permit to the next one: the permits
bound how many loads begin together, not how long a slow load (a ``model_fn`` that never
returns, say) holds the others back. Without this, two such loads held both permits, and every
other LoadModel of the framework waited out the whole load timeout.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

HOLD_SECONDS = 2.0  # most loads take milliseconds; a big TensorFlow model a second or two


class LoadPermits:
    def __init__(self, count: int, hold_seconds: float = HOLD_SECONDS):
        self.semaphore = asyncio.Semaphore(count)
        self.hold_seconds = hold_seconds

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """One permit, for the load inside the block or ``hold_seconds``, whichever ends first."""
        await self.semaphore.acquire()
        held = True

        def give_back() -> None:
            nonlocal held
            if held:
                held = False
                self.semaphore.release()

        timer = asyncio.get_running_loop().call_later(self.hold_seconds, give_back)
        try:
            yield
        finally:
            timer.cancel()
            give_back()
