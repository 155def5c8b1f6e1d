"""Per-customer energy forecasting: one Prophet model per customer, served side by side.

``generate`` makes meter readings at random instants (a daily and a yearly cycle plus noise,
0–1000 per reading); ``train`` fits one Prophet model per customer on daily means and writes each
in the layout the platform unpacks, ``<out>/<customer>/model/model.json``, plus the
``<out>/<customer>.tar.gz`` to upload.

    python -m models.energy --customers 50 --out models/build/energy --jobs 2

prints the time each fit took and a summary.
"""

import argparse
import logging
import multiprocessing
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd

from models.layout import archive, model_dir

DAY_SECONDS = 86_400
YEAR_DAYS = 365.25


def customer_id(number: int) -> str:
    return f"customer-{number:04d}"


def generate(
    customers: int = 3,
    start: str = "2021-01-01",
    end: str = "2024-01-01",
    rows_per_customer: int = 5_000,
    seed: int = 0,
) -> pd.DataFrame:
    """Readings ``customer_id, timestamp, consumption`` at random instants in ``[start, end)``.

    Each customer has its own base load, daily and yearly amplitude and phase; readings are
    clipped to 0–1000.
    """
    rng = np.random.default_rng(seed)
    first = pd.Timestamp(start)
    span = (pd.Timestamp(end) - first).total_seconds()
    if span <= 0:
        raise ValueError("end must come after start")
    frames = []
    for number in range(1, customers + 1):
        offsets = np.sort(rng.uniform(0, span, size=rows_per_customer))
        timestamps = first + pd.to_timedelta(offsets, unit="s")
        days = offsets / DAY_SECONDS
        hours = days % 1.0
        base = rng.uniform(300, 600)
        daily = rng.uniform(50, 150) * np.sin(2 * np.pi * (hours - rng.uniform(0, 1)))
        yearly = rng.uniform(80, 200) * np.cos(2 * np.pi * (days / YEAR_DAYS - rng.uniform(0, 1)))
        trend = rng.uniform(-40, 40) * days / YEAR_DAYS
        noise = rng.normal(0, 40, size=rows_per_customer)
        consumption = np.clip(base + daily + yearly + trend + noise, 0, 1000)
        frames.append(
            pd.DataFrame(
                {"customer_id": customer_id(number), "timestamp": timestamps, "consumption": consumption}
            )
        )
    return pd.concat(frames, ignore_index=True)


def daily(readings: pd.DataFrame) -> pd.DataFrame:
    """One customer's readings as Prophet's ``ds, y``: the mean reading of each day."""
    days = readings["timestamp"].dt.floor("D")
    frame = readings.groupby(days)["consumption"].mean().reset_index()
    return frame.rename(columns={"timestamp": "ds", "consumption": "y"})


def _quiet() -> None:
    """cmdstanpy reports every fit at INFO; Prophet's plotting module regrets a missing plotly."""
    from cmdstanpy.utils import get_logger

    get_logger().setLevel(logging.WARNING)  # after cmdstanpy has set itself up
    logging.getLogger("prophet").setLevel(logging.WARNING)
    logging.getLogger("prophet.plot").setLevel(logging.CRITICAL)


def fit_one(job: tuple[str, pd.DataFrame, str]) -> tuple[str, float]:
    """Fit and write one customer's model; returns (customer, fit seconds)."""
    customer, readings, out_root = job
    _quiet()
    from prophet import Prophet
    from prophet.serialize import model_to_json

    history = daily(readings)
    started = time.perf_counter()
    model = Prophet(yearly_seasonality=True, weekly_seasonality=True, daily_seasonality=False)
    model.fit(history)
    seconds = time.perf_counter() - started
    root = Path(out_root)
    (model_dir(root, customer) / "model.json").write_text(model_to_json(model), encoding="utf-8")
    archive(root, customer)
    return customer, seconds


def train(df: pd.DataFrame, out_root: Path, jobs: int = 1) -> dict[str, float]:
    """One Prophet model per customer in ``df``, written under ``out_root``; fit seconds by customer."""
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    work = [(customer, group, str(out_root)) for customer, group in df.groupby("customer_id", sort=True)]
    if jobs > 1 and len(work) > 1:
        # Each fit is single-threaded (a CmdStan process): one process per job uses one core each.
        with multiprocessing.get_context("spawn").Pool(min(jobs, len(work))) as pool:
            results = pool.map(fit_one, work, chunksize=1)
    else:
        results = [fit_one(job) for job in work]
    return dict(results)


def main() -> None:
    parser = argparse.ArgumentParser(description="Fit one Prophet model per customer on generated readings.")
    parser.add_argument("--customers", type=int, default=10)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--jobs", type=int, default=1, help="parallel fitting processes")
    parser.add_argument("--start", default="2021-01-01")
    parser.add_argument("--end", default="2024-01-01")
    parser.add_argument("--rows", type=int, default=5_000, help="readings per customer")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.customers < 1 or args.jobs < 1 or args.rows < 2:
        parser.error("--customers, --jobs must be at least 1 and --rows at least 2")
    jobs = args.jobs
    started = time.perf_counter()
    readings = generate(args.customers, args.start, args.end, args.rows, args.seed)
    fits = train(readings, args.out, jobs)
    wall = time.perf_counter() - started
    for customer, seconds in fits.items():
        print(f"{customer}: fit {seconds:.3f}s")
    times = list(fits.values())
    print(
        f"{len(times)} models in {args.out} with {jobs} job(s): fit mean {statistics.mean(times):.3f}s, "
        f"median {statistics.median(times):.3f}s, max {max(times):.3f}s; wall {wall:.1f}s"
    )


if __name__ == "__main__":
    main()
