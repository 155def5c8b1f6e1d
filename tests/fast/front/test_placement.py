"""Placement alone (server/front/placement.py): routing among replicas, replication of a hot model,
and slot choice, over plain objects standing for workers; and the pool's view it reads. The
real-server counterparts are in tests/test_replicas.py and tests/test_faults.py."""

import asyncio
import time
from dataclasses import dataclass, field

import pytest

from handlers.errors import Unavailable
from server.config import Settings
from server.front.placement import (
    REPLICATE_AFTER_SECONDS,
    Heat,
    Router,
    Slots,
    restart_wait,
    slot_for_new_model,
    spare_slot,
)
from server.front.supervisor.pool import RESTART_PATIENCE_SECONDS, Backoff, WorkerPool


@dataclass
class Worker:
    slot: int
    outstanding: int = 0
    alive: bool = True
    models: set[str] = field(default_factory=set)


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


def slots(*workers: Worker, count: int = 4, starting: tuple[int, ...] = (),
          restarting: dict[int, float] | None = None) -> Slots[Worker]:
    return Slots(count, {w.slot: w for w in workers}, {w.slot for w in workers} | set(starting), restarting or {})


# ---------------------------------------------------------------------------- routing


def test_a_request_goes_to_the_replica_with_fewest_outstanding_requests(clock):
    """test_workers_setting_puts_a_replica_on_every_worker_and_spreads_requests: two requests at
    once go to two replicas."""
    router = Router(auto_replicate=False, replicate_at=4, clock=clock)
    replicas = [Worker(0), Worker(1)]
    chosen = []
    for _ in range(4):
        worker, due = router.route(replicas, Heat())
        worker.outstanding += 1
        chosen.append(worker.slot)
    assert chosen == [0, 1, 0, 1] and not due
    replicas[1].outstanding = 0
    assert router.route(replicas, Heat())[0] is replicas[1]


def test_after_a_replicas_worker_dies_requests_go_to_the_other():
    """The service takes the dead replica away (its models stay READY with the other)."""
    survivor = Worker(1, outstanding=9)
    assert Router(False, 4).route([survivor], Heat())[0] is survivor


def test_a_model_saturated_for_long_enough_is_due_another_replica(clock):
    """test_a_hot_model_gets_a_replica_on_another_worker_by_itself"""
    router = Router(auto_replicate=True, replicate_at=2, clock=clock)
    hot, heat = [Worker(0, outstanding=2)], Heat()
    assert router.route(hot, heat) == (hot[0], False) and heat.since == clock.now  # hot from now
    clock.now += REPLICATE_AFTER_SECONDS / 2
    assert not router.route(hot, heat)[1]
    clock.now += REPLICATE_AFTER_SECONDS / 2
    assert router.route(hot, heat)[1]
    heat.replicating = True  # the service is adding one: not due twice
    assert not router.route(hot, heat)[1]
    heat.cooled()
    assert (heat.since, heat.replicating) == (None, False)


def test_saturation_has_hysteresis(clock):
    """Answers in transit dip the count: it must fall below half the threshold to cool."""
    router = Router(auto_replicate=True, replicate_at=4, clock=clock)
    worker, heat = Worker(0, outstanding=4), Heat()
    router.route([worker], heat)
    started = heat.since
    worker.outstanding = 2  # half: still hot
    clock.now += 1
    router.route([worker], heat)
    assert heat.since == started
    worker.outstanding = 1
    router.route([worker], heat)
    assert heat.since is None


def test_no_replication_when_it_is_off(clock):
    """SAGEMAKER_MODEL_SERVER_WORKERS fixes the replicas, which turns auto-replication off."""
    router = Router(auto_replicate=False, replicate_at=1, clock=clock)
    heat = Heat(since=0.0)
    assert router.route([Worker(0, outstanding=100)], heat)[1] is False


# ---------------------------------------------------------------------------- slots


def test_a_new_model_goes_to_slot_0_when_nothing_is_started():
    assert slot_for_new_model(slots()) == 0


def test_a_new_model_goes_to_the_started_worker_holding_fewest():
    """Density first: a new model joins a started worker rather than start one."""
    full, light = Worker(0, models={"a", "b"}), Worker(2, models={"c"})
    assert slot_for_new_model(slots(full, light)) == 2
    assert slot_for_new_model(slots(Worker(1, alive=False), full)) == 1  # dead, being replaced: still its slot
    assert slot_for_new_model(slots(full, light, count=2)) == 0  # slots beyond the count are not the framework's


def test_a_new_model_passes_over_a_slot_in_restart_backoff():
    """test_a_load_waiting_on_a_worker_in_backoff_answers_503_at_once: another started slot, else
    a free one is started; the slot in backoff only when there is neither."""
    crashing, other = Worker(0, alive=False), Worker(1, models={"a", "b", "c"})
    assert slot_for_new_model(slots(crashing, other, restarting={0: 8.0})) == 1
    assert slot_for_new_model(slots(crashing, count=2, restarting={0: 8.0})) == 1  # started for it
    assert slot_for_new_model(slots(crashing, count=1, restarting={0: 8.0})) == 0  # nowhere else: its 503
    both = slots(crashing, Worker(1, alive=False), count=2, restarting={0: 8.0, 1: 3.0})
    assert slot_for_new_model(both) == 1  # the backoff that ends first


def test_a_load_waits_out_a_short_backoff_and_is_told_to_retry_after_a_long_one():
    assert restart_wait(0.0, RESTART_PATIENCE_SECONDS) is None  # not in backoff (starting, or started)
    assert restart_wait(1.0, RESTART_PATIENCE_SECONDS) is None  # after a first quick death: wait
    assert restart_wait(3.2, RESTART_PATIENCE_SECONDS) == 4  # Retry-After in whole seconds, rounded up
    assert restart_wait(30.0, RESTART_PATIENCE_SECONDS) == 30


def test_another_replica_goes_to_the_least_busy_live_worker_not_holding_one():
    busy, idle, dead = Worker(0, outstanding=5), Worker(1, outstanding=1), Worker(2, alive=False)
    view = slots(busy, idle, dead)
    assert spare_slot(view, taken={0}) == 1
    assert spare_slot(view, taken={0, 1}) == 3  # the dead one's slot is claimed: the first free slot
    assert spare_slot(slots(busy, count=4, starting=(1,)), taken={0}) == 2  # slot 1 is starting
    assert spare_slot(slots(busy, idle, count=2), taken={0, 1}) is None


def test_the_pools_view_of_a_frameworks_slots():
    """What the pool hands placement: its workers by slot, of one framework, and the slots it has
    a worker started or starting in; and the models each worker holds, kept through the pool."""
    pool = WorkerPool(Settings.from_env({"MODEL_SERVER_MAX_WORKERS": "3"}), listener=None)
    worker, other = Worker(1), Worker(0)
    pool.workers = {("sklearn", 1): worker, ("xgboost", 0): other}
    pool.slots = {("sklearn", 1): None, ("sklearn", 2): None, ("xgboost", 0): None}
    view = pool.slots_of("sklearn")
    assert (view.count, dict(view.workers), set(view.claimed)) == (3, {1: worker}, {1, 2})
    pool.assign(worker, "a")
    pool.assign(worker, "b")
    pool.unassign(worker, "a")
    assert worker.models == {"b"} and slot_for_new_model(view) == 1
    pool.backoffs = {("sklearn", 2): Backoff(), ("sklearn", 1): Backoff()}
    pool.backoffs[("sklearn", 2)].until = time.monotonic() + 10  # waiting out a restart backoff
    assert set(pool.slots_of("sklearn").restarting) == {2}


def test_a_load_on_a_slot_in_a_long_backoff_is_refused_at_once_and_waits_out_a_short_one():
    """The pool's side of test_a_load_waiting_on_a_worker_in_backoff_answers_503_at_once."""
    async def scenario():
        pool = WorkerPool(Settings.from_env({"MODEL_SERVER_MAX_WORKERS": "1"}), listener=None)
        restarted = Worker(0)
        restart = asyncio.get_running_loop().create_future()
        pool.slots[("sklearn", 0)] = restart
        pool.backoffs[("sklearn", 0)] = backoff = Backoff()
        backoff.until = time.monotonic() + 7.5
        started = time.monotonic()
        with pytest.raises(Unavailable, match="restarting after repeated crashes; retry in 8 s") as refused:
            await pool.worker("sklearn", 0)
        assert refused.value.status == 503 and refused.value.retry_after == 8 and time.monotonic() - started < 0.05
        backoff.until = time.monotonic() + 0.2  # within patience: the load waits for the restart
        asyncio.get_running_loop().call_later(0.3, restart.set_result, restarted)
        assert await pool.worker("sklearn", 0) is restarted

    asyncio.run(scenario())
