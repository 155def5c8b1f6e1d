"""Prophet examples: three customers' energy forecasts, built through ``models.energy``."""

from pathlib import Path

from models import energy


def build(root: Path) -> list[str]:
    readings = energy.generate(customers=3, start="2021-01-01", end="2024-01-01", rows_per_customer=3_000, seed=7)
    return list(energy.train(readings, root))
