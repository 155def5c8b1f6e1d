"""Dynamic batching: concurrent requests to one model merged into one predict call.

Opportunistic by default: a request that finds fewer than ``concurrency`` predicts of its kind
(the same ``Rows.key``) running is predicted at once, alone, exactly as without batching, so a
lone request never waits. Requests that arrive while that many run queue up behind them, and
when one ends the oldest queued request leads the next batch with every queued request that
fits (``max_batch_size`` rows in all). ``concurrency`` is 2 by default: one predict at a time
would serialise requests whose predict leaves a core idle (a small network's call is mostly
overhead, and the other core would wait), while two keep both cores of a small instance busy and
still merge everything that queues behind them. ``max_delay_ms`` above 0 makes a leader wait that long for company before
predicting: more rows per batch, at that much latency to each batch's first request.

The worker's threads (leader/followers in ``server.worker``) call ``Batcher.predict`` from
``handlers.serving``; the thread whose request leads runs the merged predict, the others sleep on
an event of their own until their share is cut out (decode and encode stay on each request's own
thread). If the merged predict fails, each request of the batch is predicted again alone on its
own thread, so a bad request fails by itself with its own error. A model whose merged prediction
does not keep one row per input row is not batched again.

Settings: ``MODEL_SERVER_BATCH_MAX_SIZE`` (1 turns batching off) and
``MODEL_SERVER_BATCH_MAX_DELAY_MS`` for every model, and per model ``batching.json`` in its
directory: ``{"enabled": true, "max_batch_size": 32, "max_delay_ms": 0, "concurrency": 2}``,
each key optional.
"""

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from handlers.context import Context
from handlers.errors import ModelLoadError
from handlers.rows import BatchSpec, Rows, Unsplittable

log = logging.getLogger("batching")

SETTINGS_FILE = "batching.json"
MAX_BATCH_SIZE = 32
MAX_DELAY_MS = 0.0
CONCURRENCY = 2
LIMITS = {"max_batch_size": (1, 1_000_000), "max_delay_ms": (0.0, 10_000.0), "concurrency": (1, 1024)}
WHOLE = ("max_batch_size", "concurrency")

Predict = Callable[[Any, Context], Any]


@dataclass(frozen=True)
class BatchSettings:
    """One model's batching: ``enabled`` None means the model directory did not say."""

    max_batch_size: int = MAX_BATCH_SIZE
    max_delay_ms: float = MAX_DELAY_MS
    enabled: bool | None = None
    concurrency: int = CONCURRENCY  # predicts of one kind running at once before requests queue


def settings(model_dir: Path, defaults: Mapping[str, float] | None = None) -> BatchSettings:
    """The server's defaults (``WorkerConfig.batching``) overridden by ``batching.json``."""
    base = BatchSettings(
        max_batch_size=int((defaults or {}).get("max_batch_size", MAX_BATCH_SIZE)),
        max_delay_ms=float((defaults or {}).get("max_delay_ms", MAX_DELAY_MS)),
    )
    path = model_dir / SETTINGS_FILE
    if not path.is_file():
        return base
    try:
        value = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as err:
        raise ModelLoadError(f"{SETTINGS_FILE} is not valid JSON: {err}") from None
    if not isinstance(value, dict):
        raise ModelLoadError(f"{SETTINGS_FILE} must be an object such as {{\"max_batch_size\": 32}}")
    unknown = sorted(set(value) - {"enabled", *LIMITS})
    if unknown:
        raise ModelLoadError(f"{SETTINGS_FILE}: unknown key(s) {', '.join(unknown)}; known: enabled, {', '.join(LIMITS)}")
    if "enabled" in value and not isinstance(value["enabled"], bool):
        raise ModelLoadError(f"{SETTINGS_FILE}: \"enabled\" must be true or false")
    changes: dict[str, Any] = {"enabled": value.get("enabled")}
    for name, (low, high) in LIMITS.items():
        if name not in value:
            continue
        number = value[name]
        whole = name in WHOLE
        if isinstance(number, bool) or not isinstance(number, int if whole else (int, float)) or not low <= number <= high:
            kind = "a whole number" if whole else "a number"
            raise ModelLoadError(f"{SETTINGS_FILE}: {name!r} must be {kind} from {low:g} to {high:g}; got {number!r}")
        changes[name] = number
    return replace(base, **changes)


# What became of a queued request: its share of a batch, an error, or the lead of the next batch.
DONE, ALONE, LEAD = "done", "alone", "lead"


@dataclass(eq=False)
class _Request:
    rows: Rows
    data: Any  # as decoded: what predict gets when the request is predicted alone
    context: Context
    woken: threading.Event = field(default_factory=threading.Event)
    outcome: str | None = None
    result: Any = None
    size: int = 1  # how many requests shared the predict call that answered this one


class Batcher:
    """Merges one model's concurrent predictions. Shared by every thread of its worker."""

    def __init__(self, name: str, predict: Predict, spec: BatchSpec, model: Any, config: BatchSettings):
        self.name = name
        self.spec = spec
        self.model = model
        self.run_alone = predict
        self.max_rows = config.max_batch_size
        self.max_delay = config.max_delay_ms / 1000
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)  # a leader waiting out max_delay_ms listens here
        self.concurrency = config.concurrency
        self.running: dict[Hashable, int] = {}  # key -> predicts of that kind under way
        self.queues: dict[Hashable, deque[_Request]] = {}  # key -> requests queued behind them
        self.gathering: dict[Hashable, int] = {}  # key -> leaders waiting out max_delay_ms: newcomers join them
        self.enabled = True
        # Merged predict calls and the requests they answered (under the lock).
        self.batches = 0
        self.batched_requests = 0

    def predict(self, data: Any, context: Context) -> tuple[Any, int]:
        """The prediction for one request, and how many requests shared its predict call."""
        rows = self._rows(data, context)
        if rows is None:
            return self.run_alone(data, context), 1
        request = _Request(rows, data, context)
        with self.lock:
            running = self.running.get(rows.key, 0)
            if running < self.concurrency and not self.gathering.get(rows.key):
                self.running[rows.key] = running + 1
                request.outcome = LEAD
            else:
                self.queues.setdefault(rows.key, deque()).append(request)
                self.arrived.notify()
        if request.outcome != LEAD:
            request.woken.wait()
        if request.outcome == LEAD:
            self._lead(request)
        if request.outcome == ALONE:
            return self.run_alone(data, context), 1
        return request.result, request.size

    def _rows(self, data: Any, context: Context) -> Rows | None:
        if not self.enabled:
            return None
        try:
            rows = self.spec.rows(self.model, data, context)
        except Exception:  # noqa: BLE001 - the request runs alone and meets its error there
            return None
        if rows is None or rows.count < 1 or rows.count >= self.max_rows:
            return None  # as large as a batch already: nothing to gain by waiting for others
        return rows

    def _gather(self, leader: _Request) -> list[_Request]:
        """The leader and the queued requests of its key that fit, waiting ``max_delay`` for more."""
        batch, rows = [leader], leader.rows.count
        deadline = time.monotonic() + self.max_delay
        with self.lock:
            queue = self.queues.setdefault(leader.rows.key, deque())
            while True:
                while queue and rows + queue[0].rows.count <= self.max_rows:
                    request = queue.popleft()
                    batch.append(request)
                    rows += request.rows.count
                left = deadline - time.monotonic()
                if queue or rows >= self.max_rows or left <= 0:
                    return batch
                key = leader.rows.key
                self.gathering[key] = self.gathering.get(key, 0) + 1
                try:
                    self.arrived.wait(left)
                finally:
                    self.gathering[key] -= 1
                    if not self.gathering[key]:
                        del self.gathering[key]

    def _lead(self, leader: _Request) -> None:
        """Predict a batch led by ``leader``, hand the lead to the next queued request, wake the batch."""
        batch = self._gather(leader)
        try:
            self._run(batch)
        finally:
            with self.lock:
                key = leader.rows.key
                queue = self.queues.get(key)
                following = queue.popleft() if queue else None
                if following is not None:
                    following.outcome = LEAD  # the lead passes on: as many predicts run as before
                else:
                    self.queues.pop(key, None)
                    self.running[key] -= 1
                    if not self.running[key]:
                        del self.running[key]
            if following is not None:
                following.woken.set()
            for request in batch[1:]:
                request.woken.set()

    def _run(self, batch: list[_Request]) -> None:
        if len(batch) == 1:
            request = batch[0]
            request.outcome, request.result = DONE, self.run_alone(request.data, request.context)
            return
        counts = [request.rows.count for request in batch]
        try:
            merged = self.spec.merge([request.rows.data for request in batch])
            parts = self.spec.split(self.run_alone(merged, batch[0].context), counts)
        except Unsplittable as why:
            self.enabled = False
            log.warning("%s: predictions do not keep one row per input row (%s); batching is off for it", self.name, why)
            parts = None
        except Exception as err:  # noqa: BLE001 - one bad request must not fail the others: each retries alone
            log.info("%s: a batch of %d failed (%s); predicting each alone", self.name, len(batch), type(err).__name__)
            parts = None
        if parts is None:
            for request in batch:
                request.outcome = ALONE
            return
        with self.lock:
            self.batches += 1
            self.batched_requests += len(batch)
        log.debug("%s: one predict for %d requests (%d rows)", self.name, len(batch), sum(counts))
        for request, part in zip(batch, parts):
            request.outcome, request.result, request.size = DONE, part, len(batch)
