"""The front's load slots (server/front/supervisor/load_permits.py): they bound how many loads start
together, and a load that never ends gives its slot back after the hold time."""

import asyncio

from server.front.supervisor.load_permits import LoadPermits


def test_loads_that_never_end_hold_their_slots_only_for_the_hold_time():
    async def scenario() -> tuple[float, float]:
        slots = LoadPermits(2, hold_seconds=0.2)
        loop = asyncio.get_running_loop()
        forever = asyncio.Event()

        async def never_ends() -> None:
            async with slots.hold():
                await forever.wait()

        stuck = [asyncio.create_task(never_ends()) for _ in range(2)]
        await asyncio.sleep(0.01)
        started = loop.time()
        async with slots.hold():  # both slots taken: it waits for the hold time, not for ever
            waited = loop.time() - started
        started = loop.time()
        async with slots.hold():  # a finished load gave its slot back at once
            again = loop.time() - started
        forever.set()
        await asyncio.gather(*stuck)
        return waited, again

    waited, again = asyncio.run(asyncio.wait_for(scenario(), 5))
    assert 0.15 < waited < 1.0 and again < 0.05


def test_slots_bound_how_many_loads_start_together():
    async def scenario() -> int:
        slots = LoadPermits(2, hold_seconds=10)
        running = peak = 0

        async def load() -> None:
            nonlocal running, peak
            async with slots.hold():
                running += 1
                peak = max(peak, running)
                await asyncio.sleep(0.02)
                running -= 1

        await asyncio.gather(*(load() for _ in range(6)))
        return peak

    assert asyncio.run(asyncio.wait_for(scenario(), 5)) == 2
