"""Placement: which worker a request goes to, where a new model or another replica of a hot one goes.

A framework has a fixed number of slots, each run by one worker process once started. These rules
read only what a worker looks like from outside (its slot, whether it is alive, how many requests
it has outstanding, which models it holds), so they are tested with plain objects
(``tests/fast/front/test_placement.py``):

- a request goes to the replica whose worker has the fewest outstanding requests (the platform's
  LEAST_OUTSTANDING_REQUESTS, inside the container);
- a new model goes to the started worker holding the fewest models (slot 0 if none is started):
  density first, since each worker costs its framework's import; a slot whose worker is waiting
  out a restart backoff is passed over for another started slot, else for a free one, and
  chosen only when there is neither (its LoadModel then answers 503 at once, ``restart_wait``);
- a model whose every replica's worker stays saturated (``replicate_at`` outstanding) for
  REPLICATE_AFTER_SECONDS gets another replica on a spare slot: the least busy started worker
  not holding it, else the first slot not started yet.
"""

import math
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

REPLICATE_AFTER_SECONDS = 0.5  # how long a model's workers stay saturated before it gets another replica


class Seat(Protocol):
    """A worker as placement sees it."""

    @property
    def slot(self) -> int: ...

    @property
    def alive(self) -> bool: ...

    @property
    def outstanding(self) -> int:
        """Requests sent to it and not answered."""
        ...

    @property
    def models(self) -> Collection[str]: ...


W = TypeVar("W", bound=Seat)


@dataclass
class Heat:
    """A model's saturation: since when its replicas' workers have been saturated, and whether a
    replica is being added for it."""

    since: float | None = None
    replicating: bool = False

    def cooled(self) -> None:
        """A replica was added (or could not be): saturation is measured afresh."""
        self.since, self.replicating = None, False


@dataclass(frozen=True)
class Slots(Generic[W]):
    """A framework's slots, as its pool has them."""

    count: int  # slots the framework may use
    workers: Mapping[int, W]  # slot -> the worker started there (alive, or just dead and being replaced)
    claimed: Collection[int]  # slots with a worker started or starting
    restarting: Mapping[int, float] = field(default_factory=dict)  # slot -> seconds its restart backoff has left


def slot_for_new_model(slots: Slots[W]) -> int:
    """The started slot whose worker holds the fewest models; slot 0 if none is started. Slots
    waiting out a restart backoff come last: another started slot, else the first free one, else
    the one whose backoff ends first."""
    started = [s for s in range(slots.count) if s in slots.workers and s not in slots.restarting]
    if started:
        return min(started, key=lambda s: len(slots.workers[s].models))
    free = [s for s in range(slots.count) if s not in slots.claimed and s not in slots.restarting]
    if free or not slots.restarting:
        return free[0] if free else 0
    return min(slots.restarting, key=lambda s: slots.restarting[s])


def restart_wait(left: float, patience: float) -> int | None:
    """Seconds a LoadModel is told to wait (Retry-After) for a worker whose restart backoff has
    ``left`` seconds to go; None when that is within ``patience`` and the load may wait it out."""
    if left <= patience:
        return None
    return max(1, math.ceil(left))


def spare_slot(slots: Slots[W], taken: Collection[int]) -> int | None:
    """Where another replica goes: the least busy live worker's slot not in ``taken``, else the
    first slot not claimed yet; None when every slot holds one."""
    free = [s for s in range(slots.count) if s not in taken]
    started = [s for s in free if s in slots.workers and slots.workers[s].alive]
    if started:
        return min(started, key=lambda s: slots.workers[s].outstanding)
    unclaimed = [s for s in free if s not in slots.claimed]
    return unclaimed[0] if unclaimed else None


class Router:
    """Routes requests among a model's replicas and says when the model is due another replica."""

    def __init__(self, auto_replicate: bool, replicate_at: int, clock: Callable[[], float] = time.monotonic):
        self.auto_replicate = auto_replicate
        self.replicate_at = replicate_at
        self.clock = clock

    def route(self, replicas: Sequence[W], heat: Heat) -> tuple[W, bool]:
        """The replica with the fewest outstanding requests, and whether the model is due another
        replica: its chosen worker has stayed saturated for REPLICATE_AFTER_SECONDS and none is
        being added. ``replicas`` is not empty."""
        worker = replicas[0] if len(replicas) == 1 else min(replicas, key=lambda w: w.outstanding)
        if not self.auto_replicate:
            return worker, False
        outstanding = worker.outstanding
        if outstanding >= self.replicate_at:
            now = self.clock()
            if heat.since is None:
                heat.since = now
            elif now - heat.since >= REPLICATE_AFTER_SECONDS and not heat.replicating:
                return worker, True
        elif outstanding * 2 < self.replicate_at:  # hysteresis: answers in transit dip it
            heat.since = None
        return worker, False
