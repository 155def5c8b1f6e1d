"""One group of requests to one model, predicted with as few calls as their inputs allow.

``Batcher.predict`` (called by ``handlers.serving`` with a group's decoded inputs) merges the
inputs of one kind (the same ``Rows.key``) into one predict call of at most ``max_batch_size``
rows and cuts the prediction back (``handlers.batching.merge``); decoding and encoding stay each
request's own. If a merged predict fails, each of its requests is predicted again alone, so a
bad request fails by itself with its own error. A model whose merged prediction does not keep
one row per input row is not batched again.
"""

import logging
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from handlers.batching.merge import Unsplittable
from handlers.batching.rows import BatchSpec, Rows
from handlers.batching.settings import BatchSettings
from handlers.context import Context

log = logging.getLogger("batching")

Predict = Callable[[Any, Context], Any]


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
