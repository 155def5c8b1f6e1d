"""The fault ledger: a worker's deaths in, verdicts out.

One framework worker holds many models, so when it dies the front must decide, from what its
threads were running (``server.shared.running``), which model to hold responsible. This module
is that policy, and all of it: pure bookkeeping over names and an injectable clock, no asyncio
and no processes, so that every case can be tested in-process (``tests/fast/front/test_ledger.py``).

- A ``Death`` says what a worker was running when it died. A request whose model was not running
  there only waited in its inbox: it never started, and is sent again once the model is back.
- Each death is blamed on its suspects (the models it was running invokes of, else loads of),
  each getting an equal share of one strike. The model at fault is running at every one of its
  deaths, a neighbour only at some, so it reaches ``QUARANTINE_DEATHS`` strikes within
  ``QUARANTINE_WINDOW_SECONDS`` first and is quarantined: not reloaded until it is unloaded and
  loaded again.
- Faster under load: a slot's deaths are kept with their suspects; when the suspects of its
  latest deaths (two at least, within the window) have exactly one model in common, that model
  is quarantined at once and the slot's restart backoff is forgiven (its crash loop is over).
  Known limit: a neighbour running at *every* death shares the blame equally with the poison
  (co-occurrence cannot tell them apart) and is quarantined with it.
- A load cut short by a death beside other running models may be innocent: it is retried up to
  ``INTERRUPTED_LOADS`` times within the window, then given up. A load that was all the worker
  was running is not retried.
- After a death, models blamed within the window are reloaded last, so that one which kills the
  new worker again cuts no neighbour's reload short.
- A hung thread is no death, but it is a fault: a request past the invocation timeout whose
  thread is still running it has lost that thread. A worker that has lost half its threads
  (``replace_for_hung_threads``) is replaced gracefully (``server.front.supervisor.renewal``).
"""

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, TypeVar

QUARANTINE_DEATHS = 2  # strikes (shares of deaths of its worker) that quarantine a model...
QUARANTINE_WINDOW_SECONDS = 600.0  # ...within this long
INTERRUPTED_LOADS = 4  # loads of a model cut short by deaths beside others, within the window, that are retried
HUNG_SHARE = 0.5  # a worker that has lost this share of its serving threads to hung requests is replaced
EPSILON = 1e-9  # shares are fractions: three thirds make a whole strike

Slot = tuple[str, int]  # (framework, slot index): a worker's place, which outlives each of its processes
M = TypeVar("M")


class Work(NamedTuple):
    """A frame sent to a worker and not answered yet: the model it is for, and whether it is a load."""

    model: str
    load: bool


@dataclass(frozen=True)
class Death:
    """What a worker was running when it died."""

    slot: Slot
    running: frozenset[str] = frozenset()  # the models its threads were running (loads or invokes)
    invoking: frozenset[str] = frozenset()  # those of them it was running invokes of

    @classmethod
    def of(cls, slot: Slot, in_flight: Mapping[int, Work], running_ids: Iterable[int]) -> "Death":
        """The death of a worker that had ``in_flight`` frames unanswered, of which its threads
        were running those with ``running_ids``: the others only waited."""
        ran = [in_flight[i] for i in running_ids if i in in_flight]
        return cls(slot, frozenset(w.model for w in ran), frozenset(w.model for w in ran if not w.load))

    @property
    def suspects(self) -> frozenset[str]:
        """Who shares the blame: the models it was running invokes of, else those it was loading."""
        return self.invoking or self.running

    def started(self, model: str | None) -> bool:
        """Whether a request to ``model`` may have run (its model was running): else it only
        waited, and sending it again is safe."""
        return model in self.running

    def alone(self, model: str) -> bool:
        """Whether ``model`` was all it was running (then the likely cause of a load's death)."""
        return self.running <= {model}


@dataclass
class Record:
    """One model's faults within the window (monotonic times)."""

    deaths: list[tuple[float, float]] = field(default_factory=list)  # (when, share of the blame)
    interrupted: list[float] = field(default_factory=list)  # when deaths beside others cut its loads short

    @property
    def blame(self) -> float:
        return sum(share for _, share in self.deaths)


@dataclass(frozen=True)
class Verdict:
    """What one death decides."""

    blamed: Mapping[str, float]  # each held suspect -> its share of this death
    quarantined: frozenset[str]  # held models to quarantine now
    culprit: str | None = None  # the one model running at each of the slot's latest deaths, if named
    forgiven: Slot | None = None  # the slot whose restart backoff is reset (its culprit is named)


class FaultLedger:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.records: dict[str, Record] = {}  # by model name; forgotten when the model leaves the registry
        self.slots: dict[Slot, list[tuple[float, frozenset[str]]]] = {}  # (when, suspects) of each slot's deaths
        self.quarantine: set[str] = set()

    def _recent(self, now: float, when: float) -> bool:
        return now - when < QUARANTINE_WINDOW_SECONDS

    # ------------------------------------------------------------------ deaths

    def died(self, death: Death, held: Iterable[str]) -> Verdict:
        """Blame ``death`` on its suspects among the models the worker ``held``; quarantine those
        it convicts. A quarantined model takes no more blame (it is held nowhere)."""
        now = self.clock()
        suspects = death.suspects
        culprit = self._running_at_every_death(death.slot, suspects, now)
        blamed: dict[str, float] = {}
        quarantined = set()
        for model in held:
            if model not in suspects:
                continue
            record = self.records.setdefault(model, Record())
            share = 1 / len(suspects)
            record.deaths = [d for d in record.deaths if self._recent(now, d[0])] + [(now, share)]
            blamed[model] = share
            if model == culprit or record.blame >= QUARANTINE_DEATHS - EPSILON:
                quarantined.add(model)
        self.quarantine |= quarantined
        return Verdict(blamed, frozenset(quarantined), culprit, death.slot if culprit is not None else None)

    def _running_at_every_death(self, slot: Slot, suspects: frozenset[str], now: float) -> str | None:
        """The one model that was running at each of the slot's latest deaths (two at least, within
        the window), if there is one: under load several models run at every death, but only the
        one at fault at all of them. The slot's history starts again once it is named."""
        history = [d for d in self.slots.get(slot, []) if self._recent(now, d[0])] + [(now, suspects)]
        self.slots[slot] = history
        common = set(suspects)
        for _, earlier in reversed(history[:-1]):
            common &= earlier
            if len(common) == 1:
                del self.slots[slot]
                return next(iter(common))
            if not common:
                return None
        return None

    # ------------------------------------------------------------------ loads

    def retry_load(self, model: str, alone: bool) -> bool:
        """Whether a load of ``model`` that a worker's death cut short is tried again: never when it
        was all the worker ran (it is the likely cause), else at most INTERRUPTED_LOADS times
        within the window, so that a model which crashes its loads beside others cannot loop for ever."""
        if alone:
            return False
        now = self.clock()
        record = self.records.setdefault(model, Record())
        record.interrupted = [t for t in record.interrupted if self._recent(now, t)] + [now]
        return len(record.interrupted) <= INTERRUPTED_LOADS

    def reload_order(self, models: Sequence[M], name: Callable[[M], str]) -> tuple[list[M], list[M]]:
        """``models`` to reload after a death, in two waves: those not blamed within the window,
        then the suspects (a request to one that kills the worker again then cuts no neighbour's
        reload short)."""
        now = self.clock()
        suspect = [any(self._recent(now, t) for t, _ in self.record(name(m)).deaths) for m in models]
        return [m for m, s in zip(models, suspect) if not s], [m for m, s in zip(models, suspect) if s]

    # ------------------------------------------------------------------ queries

    def quarantined(self, model: str) -> bool:
        """Whether ``model`` is quarantined: no replica of it may serve (a late one is given back)."""
        return model in self.quarantine

    def record(self, model: str) -> Record:
        return self.records.get(model) or Record()

    def forget(self, model: str) -> None:
        """``model`` left the registry (unloaded, or its load failed): a model loaded again under
        its name starts with a clean record. The slots' histories keep it: they are of the slots."""
        self.records.pop(model, None)
        self.quarantine.discard(model)


def replace_for_hung_threads(lost: int, threads: int) -> bool:
    """Whether a worker with ``lost`` of its ``threads`` serving threads stuck in requests past the
    timeout is due a replacement: at half of them (one of one, two of three or four). Before
    then the rest serve on; the ping kills a worker only once all of them are stuck, and then as
    a death, which fails its other requests, so a graceful replacement at half comes first."""
    return lost > 0 and lost >= threads * HUNG_SHARE
