"""Routing between the instances of a variant: RANDOM, or LEAST_OUTSTANDING_REQUESTS.

RANDOM picks uniformly; LEAST_OUTSTANDING_REQUESTS picks among the instances with the fewest
requests in flight (ties at random), which keeps a cheap request from queueing behind an expensive
one when costs vary widely (CONTRACT.md §7).
"""

import random
from collections.abc import Sequence
from typing import Protocol, TypeVar

RANDOM = "RANDOM"
LEAST_OUTSTANDING = "LEAST_OUTSTANDING_REQUESTS"


class _Busy(Protocol):
    outstanding: int


class _Weighted(Protocol):
    weight: float


B = TypeVar("B", bound=_Busy)
W = TypeVar("W", bound=_Weighted)


def choose(instances: Sequence[B], strategy: str, rng: random.Random) -> B | None:
    if not instances:
        return None
    if strategy == LEAST_OUTSTANDING:
        fewest = min(instance.outstanding for instance in instances)
        instances = [instance for instance in instances if instance.outstanding == fewest]
    return rng.choice(instances)


def choose_variant(variants: Sequence[W], rng: random.Random) -> W:
    """A variant at random in proportion to its weight (uniformly when every weight is zero)."""
    weights = [max(variant.weight, 0.0) for variant in variants]
    if not any(weights):
        return rng.choice(variants)
    return rng.choices(variants, weights)[0]
