"""The service carrying out the ledger's verdicts, in-process: the real ModelService, registry,
budget, placement and ledger, over a pool of stand-in workers whose deaths the test decides.
What a real worker's death looks like to the front (calls failing with WorkerDied, then the
pool's worker_died and worker_replaced) is played here step by step, so that the races of
tests/test_worker_hardening.py happen in a fixed order."""

import asyncio
import itertools
from typing import Any

import pytest

from server.config import Settings
from server.front.ledger import Death
from server.front.placement import Slots
from server.front.service import ModelService
from server.front.supervisor.load_permits import LoadPermits
from server.front.supervisor.process import CallTimedOut, WorkerDied
from server.front.supervisor.standby import Standbys, WarmPolicy
from server.shared.protocol import Op

pids = itertools.count(90001)


class StandInWorker:
    """A worker as the service uses it: calls answered by the test, a death the test decides."""

    def __init__(self, slot: int):
        self.framework, self.slot, self.name, self.pid = "sklearn", slot, f"sklearn-{slot}", next(pids)
        self.alive = True
        self.death = Death((self.framework, slot))
        self.models: set[str] = set()
        self.load_permits = LoadPermits(4)
        self.calls: list[tuple[str, str]] = []
        self.pending: dict[int, tuple[str, asyncio.Future[Any]]] = {}
        self.hold: dict[str, asyncio.Event] = {}  # a load of this model waits for the event
        self.ids = itertools.count(1)

    @property
    def outstanding(self) -> int:
        return len(self.pending)

    def exit_description(self) -> str:
        return "exit code 3"

    async def call(self, header: dict[str, Any], body: bytes = b"", timeout: float | None = None) -> tuple[dict[str, Any], bytes]:
        if not self.alive:
            raise WorkerDied(self)
        op, key = header["op"], header.get("key", "")
        self.calls.append((op, key))
        if key in self.hold and op != Op.UNLOAD:  # it waits for the event (or the worker's death)
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self.pending[next(self.ids)] = (key, future)
            waiting = asyncio.ensure_future(self.hold[key].wait())
            try:
                await asyncio.wait({waiting, future}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiting.cancel()
            if future.done():
                return future.result()  # raises WorkerDied
        return {"status": 200, "memory_bytes": 0, "seconds": 0.0}, b"answer"

    def expire(self, key: str, started: bool) -> None:
        """The calls to ``key`` waiting here time out, having run (``started``) or only waited."""
        for waiting, future in self.pending.values():
            if waiting == key and not future.done():
                future.set_exception(CallTimedOut(started))

    def die(self, *invoking: str, loading: tuple[str, ...] = ()) -> None:
        """Its threads were running invokes of ``invoking``, loads of ``loading``; every call in flight fails."""
        self.alive = False
        self.death = Death((self.framework, self.slot), frozenset(invoking) | frozenset(loading), frozenset(invoking))
        pending, self.pending = self.pending, {}
        for key, future in pending.values():
            if not future.done():
                future.set_exception(WorkerDied(self, started=self.death.started(key)))


class StandInPool:
    def __init__(self, count: int):
        self.count = count
        self.workers: dict[int, StandInWorker] = {}
        self.forgiven: list[tuple[str, int]] = []
        self.replacing: set[StandInWorker] = set()  # workers whose renewal is under way
        self.renewals = self
        self.standby = Standbys(WarmPolicy("none", (), 600.0, True), lambda framework, slot: None, {}, 1.0, lambda framework: 0)

    async def going(self, worker: StandInWorker) -> bool:
        """The renewals' word: whether the worker is on its way out (here: being replaced)."""
        return worker in self.replacing

    def slots_of(self, framework: str) -> Slots[StandInWorker]:
        return Slots(self.count, dict(self.workers), set(self.workers))

    def started(self, framework: str, slot: int) -> bool:
        return slot in self.workers

    async def worker(self, framework: str, slot: int) -> StandInWorker:
        if slot not in self.workers:
            self.workers[slot] = StandInWorker(slot)
        return self.workers[slot]

    def assign(self, worker: StandInWorker, model: str) -> None:
        worker.models.add(model)

    def unassign(self, worker: StandInWorker, model: str) -> None:
        worker.models.discard(model)

    def forgive(self, framework: str, slot: int) -> None:
        self.forgiven.append((framework, slot))

    def pids(self) -> list[int]:
        return []

    async def stop(self) -> None:
        pass


class World:
    def __init__(self, root, workers: int = 1):
        env = {"SAGEMAKER_MULTI_MODEL": "true", "MODEL_SERVER_MODELS_ROOT": str(root), "MODEL_SERVER_MAX_WORKERS": str(workers),
               "MODEL_SERVER_MEMORY_LIMIT_MB": "1000000"}
        if workers > 1:
            env["SAGEMAKER_MODEL_SERVER_WORKERS"] = str(workers)
        self.root = root
        self.service = ModelService(Settings.from_env(env))
        self.pool = self.service.pool = StandInPool(workers)

    async def load(self, name: str) -> None:
        (self.root / name).mkdir(exist_ok=True)
        (self.root / name / "model.joblib").write_bytes(b"stand-in")
        await self.service.load(name, name)

    async def kill(self, slot: int, *running: str) -> StandInWorker:
        """The worker of ``slot`` dies running ``running``; the pool reports it and starts another."""
        dead = self.pool.workers.pop(slot)
        dead.die(*running)
        self.service.worker_died(dead)
        await asyncio.sleep(0)
        fresh = self.pool.workers[slot] = StandInWorker(slot)
        self.service.worker_replaced(dead, fresh)
        return fresh

    async def settle(self) -> None:
        for _ in range(20):
            await asyncio.sleep(0)

    def status(self, name: str) -> str:
        return self.service.describe(name)["status"]


def run(workers: int = 1):
    """The test ``scenario(world)`` run in an event loop of its own, over ``workers`` slots."""
    def decorator(scenario):
        def test(tmp_path):
            async def main():
                world = World(tmp_path, workers)
                try:
                    await scenario(world)
                finally:
                    world.service.background.cancel()
            asyncio.run(main())
        test.__name__, test.__doc__ = scenario.__name__, scenario.__doc__
        return test
    return decorator


@run()
async def test_a_poison_model_is_quarantined_at_its_second_death_and_its_neighbour_kept(world):
    await world.load("plain")
    await world.load("poison")
    await world.kill(0, "poison")
    await world.settle()
    assert world.status("poison") == world.status("plain") == "READY"  # reloaded on the new worker
    await world.kill(0, "poison")
    await world.settle()
    assert world.status("poison") == "QUARANTINED" and world.status("plain") == "READY"
    assert world.pool.forgiven == [("sklearn", 0)]
    with pytest.raises(Exception, match="quarantined"):
        await world.service.invoke("poison", b"", {})
    assert (await world.service.invoke("plain", b"", {}))[1] == b"answer"
    assert (Op.LOAD, "poison") not in world.pool.workers[0].calls  # not reloaded
    # Unloaded and loaded again by a new LoadModel, it gets a fresh start.
    await world.service.unload("poison")
    await world.load("poison")
    assert world.status("poison") == "READY" and not world.service.ledger.record("poison").deaths


@run()
async def test_a_request_that_only_waited_is_sent_again_and_its_model_not_blamed(world):
    await world.load("plain")
    await world.load("poison")
    worker = world.pool.workers[0]
    worker.hold["plain"] = asyncio.Event()  # plain's request waits in the worker's inbox
    request = asyncio.ensure_future(world.service.invoke("plain", b"", {}))
    await world.settle()
    await world.kill(0, "poison")
    reply, body = await asyncio.wait_for(request, 5)
    calls = world.pool.workers[0].calls
    assert body == b"answer" and (Op.INVOKE, "plain") in calls  # on the new worker
    assert calls.index((Op.LOAD, "plain")) < calls.index((Op.LOAD, "poison"))  # the suspect reloads last
    assert world.service.ledger.record("plain").deaths == [] and world.service.ledger.record("poison").blame == 1.0


@run()
async def test_a_request_to_the_model_running_at_the_death_is_a_503(world):
    await world.load("poison")
    world.pool.workers[0].hold["poison"] = asyncio.Event()
    request = asyncio.ensure_future(world.service.invoke("poison", b"", {}))
    await world.settle()
    await world.kill(0, "poison")
    with pytest.raises(Exception, match="died during the request") as raised:
        await request
    assert raised.value.status == 503


@run(workers=2)
async def test_a_late_replica_does_not_bring_a_quarantined_model_back(world):
    """Two replicas. One's worker dies with the poison running; while its replica reloads on
    the new worker, the other's dies the same way: quarantined. The reload that finishes after
    is given back, and the model stays QUARANTINED."""
    await world.load("poison")
    assert len(world.service.registry.get("poison").replicas) == 2
    fresh = StandInWorker(0)
    fresh.hold["poison"] = asyncio.Event()
    dead = world.pool.workers.pop(0)
    dead.die("poison")
    world.service.worker_died(dead)
    world.pool.workers[0] = fresh
    world.service.worker_replaced(dead, fresh)
    await world.settle()
    assert world.status("poison") == "READY" and (Op.LOAD, "poison") in fresh.calls  # served by slot 1, reloading on 0
    await world.kill(1, "poison")
    assert world.status("poison") == "QUARANTINED"
    fresh.hold["poison"].set()  # the late reload finishes
    await world.settle()
    assert world.status("poison") == "QUARANTINED" and world.service.registry.get("poison").replicas == []
    assert fresh.calls[-1] == (Op.UNLOAD, "poison") and "poison" not in fresh.models  # given back


@run()
async def test_reloads_cut_short_beside_others_wait_for_the_next_worker_then_give_up(world):
    """Both models reload on the new worker when it dies from outside (either may be the cause):
    they wait for the next one, up to four times in the window; at the fifth both are unloaded."""
    await world.load("a")
    await world.load("b")
    dead = world.pool.workers[0]
    dead.die()  # killed from outside with nothing running
    world.service.worker_died(dead)
    for attempt in range(5):
        fresh = world.pool.workers[0] = StandInWorker(0)
        fresh.hold = {name: asyncio.Event() for name in "ab"}
        world.service.worker_replaced(dead, fresh)
        await world.settle()
        assert fresh.calls == [(Op.LOAD, "a"), (Op.LOAD, "b")] and fresh.outstanding == 2  # both under way
        fresh.die(loading=("a", "b"))  # killed from outside again: either load may have been the cause
        world.service.worker_died(fresh)
        await world.settle()
        if attempt < 4:
            assert world.status("a") == world.status("b") == "LOADING"
        dead = fresh
    assert world.service.registry.get("a") is None and world.service.registry.get("b") is None
    with pytest.raises(Exception, match="not loaded"):
        await world.service.invoke("a", b"", {})


@run()
async def test_the_one_model_running_at_both_of_two_deaths_goes_at_the_second(world):
    for name in ("a", "b", "poison"):
        await world.load(name)
    await world.kill(0, "a", "poison")
    await world.settle()
    await world.kill(0, "b", "poison")
    await world.settle()
    assert [world.status(n) for n in ("a", "b", "poison")] == ["READY", "READY", "QUARANTINED"]
    assert world.pool.forgiven == [("sklearn", 0)]
    assert "running at 2 deaths of its worker" in world.service.registry.get("poison").failure.message


@run(workers=2)
async def test_an_unload_during_a_reload_answers_once_the_reloaded_copy_is_given_back(world):
    """test_an_unload_during_a_reload_answers_once_the_reloaded_copy_is_released"""
    await world.load("big")
    fresh = StandInWorker(0)
    fresh.hold["big"] = asyncio.Event()
    dead = world.pool.workers.pop(0)
    dead.die()
    world.service.worker_died(dead)
    world.pool.workers[0] = fresh
    world.service.worker_replaced(dead, fresh)
    await world.settle()
    assert world.status("big") == "READY" and len(world.service.registry.get("big").replicas) == 1
    unloading = asyncio.ensure_future(world.service.unload("big"))
    await world.settle()
    assert not unloading.done()  # it waits for the reload under way
    fresh.hold["big"].set()
    await asyncio.wait_for(unloading, 5)
    assert fresh.calls[-1] == (Op.UNLOAD, "big") and not fresh.models
    assert world.pool.workers[1].calls[-1] == (Op.UNLOAD, "big")
    with pytest.raises(Exception, match="not loaded"):
        world.service.describe("big")


@run()
async def test_a_request_that_never_started_in_a_worker_being_replaced_goes_to_its_successor(world):
    """test_a_request_queued_behind_a_wedged_worker_goes_to_its_replacement: its time ran out in
    the inbox of a worker whose threads hang; once the replacement has the model, it is sent
    there with a timeout afresh. One that had started is a 504 as ever."""
    await world.load("plain")
    await world.load("other")
    old = world.pool.workers[0]
    old.hold["plain"] = asyncio.Event()
    queued = asyncio.ensure_future(world.service.invoke("plain", b"", {}))
    await world.settle()
    world.pool.replacing.add(old)
    old.expire("plain", started=False)
    await world.settle()
    assert not queued.done()  # it waits for the replacement
    fresh = world.pool.workers[0] = StandInWorker(0)
    await world.service.worker_renewing(old, fresh)
    assert [e.replicas for e in (world.service.registry.get("plain"), world.service.registry.get("other"))] == [[fresh]] * 2
    assert not old.models and fresh.models == {"plain", "other"}
    _, body = await asyncio.wait_for(queued, 5)
    assert body == b"answer" and (Op.INVOKE, "plain") in fresh.calls
    assert world.status("plain") == world.status("other") == "READY"
    fresh.hold["plain"] = asyncio.Event()
    late = asyncio.ensure_future(world.service.invoke("plain", b"", {}))
    world.pool.replacing.add(fresh)
    await world.settle()
    fresh.expire("plain", started=True)
    with pytest.raises(Exception, match="longer than") as raised:
        await late
    assert raised.value.status == 504
