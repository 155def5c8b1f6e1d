"""Dynamic batching: concurrent requests to one model merged into one predict call.

Opportunistic by default. The worker (``server.worker.inbox``) keeps the requests it has read but not
yet started in an inbox: a request to a model with fewer than ``concurrency`` predicts running
is started at once, exactly as without batching, so a lone request never waits; requests that
arrive while that many run wait there, and when one ends its thread takes every request of that
model waiting, up to ``max_batch_size``, as one group. ``concurrency`` is 1 by default: measured
on 2 cores, a second predict of the same model competes with the first for the worker's
interpreter and leaves smaller batches (scikit-learn at 8 clients and a small TorchScript MLP at
32 both gave more with 1). ``max_delay_ms`` above 0 makes a group wait that long for company
before predicting: more rows per call, at that much latency to each group's first request.
Waiting requests are frames in a queue, not threads: a worker's few threads merge as many
requests as arrive.

``Batcher.predict`` (called by ``handlers.serving`` with a group's decoded inputs) merges the
inputs of one kind (the same ``Rows.key``) into one predict call of at most ``max_batch_size``
rows and cuts the prediction back; decoding and encoding stay each request's own. If a merged
predict fails, each of its requests is predicted again alone, so a bad request fails by itself
with its own error. A model whose merged prediction does not keep one row per input row is not
batched again.

Settings: ``MODEL_SERVER_BATCH_MAX_SIZE`` (1 turns batching off) and
``MODEL_SERVER_BATCH_MAX_DELAY_MS`` for every model, and per model ``batching.json`` in its
directory: ``{"enabled": true, "max_batch_size": 32, "max_delay_ms": 0, "concurrency": 2}``,
each key optional.
"""

import logging
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson

from handlers.batching.rows import BatchSpec, Rows, Unsplittable
from handlers.context import Context
from handlers.errors import ModelLoadError

log = logging.getLogger("batching")

SETTINGS_FILE = "batching.json"
MAX_BATCH_SIZE = 32
MAX_DELAY_MS = 0.0
CONCURRENCY = 1
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


@dataclass(eq=False)
class Outcome:
    """One request's share of a prediction: its value, or the error it met alone."""

    value: Any = None
    error: BaseException | None = None
    size: int = 1  # how many requests shared the predict call that answered this one


class Batcher:
    """Predicts several requests to one model with as few predict calls as their inputs allow."""

    def __init__(self, name: str, predict: Predict, spec: BatchSpec, model: Any, config: BatchSettings):
        self.name = name
        self.spec = spec
        self.model = model
        self.run_alone = predict
        self.config = config
        self.enabled = True

    def predict(self, requests: list[tuple[Any, Context]]) -> list[Outcome]:
        """One outcome per (decoded input, context), in order. Inputs of one ``Rows.key`` share a
        predict call, up to ``max_batch_size`` rows; the others, and every request of a merged
        call that failed, are predicted alone."""
        outcomes = [Outcome() for _ in requests]
        groups: dict[Hashable, list[tuple[int, Rows]]] = {}
        alone = []
        for index, (data, context) in enumerate(requests):
            rows = self._rows(data, context) if len(requests) > 1 else None
            if rows is None:
                alone.append(index)
            else:
                groups.setdefault(rows.key, []).append((index, rows))
        for members in groups.values():
            for batch in self._chunks(members):
                if len(batch) == 1 or not self._run(batch, requests, outcomes):
                    alone.extend(index for index, _ in batch)
        for index in sorted(alone):
            data, context = requests[index]
            try:
                outcomes[index].value = self.run_alone(data, context)
            except BaseException as err:  # noqa: BLE001 - each request meets its own error
                outcomes[index].error = err
        return outcomes

    def _rows(self, data: Any, context: Context) -> Rows | None:
        if not self.enabled:
            return None
        try:
            rows = self.spec.rows(self.model, data, context)
        except Exception:  # noqa: BLE001 - the request runs alone and meets its error there
            return None
        if rows is None or rows.count < 1 or rows.count >= self.config.max_batch_size:
            return None  # as large as a batch already: nothing to gain from merging
        return rows

    def _chunks(self, members: list[tuple[int, Rows]]) -> list[list[tuple[int, Rows]]]:
        """Consecutive runs of at most ``max_batch_size`` rows."""
        chunks: list[list[tuple[int, Rows]]] = [[]]
        rows = 0
        for member in members:
            if chunks[-1] and rows + member[1].count > self.config.max_batch_size:
                chunks.append([])
                rows = 0
            chunks[-1].append(member)
            rows += member[1].count
        return chunks

    def _run(self, batch: list[tuple[int, Rows]], requests: list[tuple[Any, Context]], outcomes: list[Outcome]) -> bool:
        """Predict ``batch`` with one call; False when its requests must be predicted alone."""
        counts = [rows.count for _, rows in batch]
        try:
            merged = self.spec.merge([rows.data for _, rows in batch])
            parts = self.spec.split(self.run_alone(merged, requests[batch[0][0]][1]), counts)
        except Unsplittable as why:
            self.enabled = False
            log.warning("%s: predictions do not keep one row per input row (%s); batching is off for it", self.name, why)
            return False
        except BaseException as err:  # noqa: BLE001 - one bad request must not fail the others: each retries alone
            log.info("%s: a batch of %d failed (%s); predicting each alone", self.name, len(batch), type(err).__name__)
            return False
        log.debug("%s: one predict for %d requests (%d rows)", self.name, len(batch), sum(counts))
        for (index, _), part in zip(batch, parts):
            outcomes[index].value, outcomes[index].size = part, len(batch)
        return True
