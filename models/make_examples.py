"""Train the example models and write them as the platform unpacks them.

``python -m models.make_examples --out models/build [--only sklearn,xgboost]`` writes
``<out>/<id>/model/...`` (what LoadModel's url points at) and ``<out>/<id>.tar.gz`` (what you
upload to S3) for every framework module in ``models/examples``.
"""

import argparse
import importlib
import pkgutil
import time
from pathlib import Path

import models.examples
from models.layout import archive


def frameworks() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(models.examples.__path__))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("models/build"))
    parser.add_argument("--only", help="comma-separated frameworks (default: all)")
    args = parser.parse_args()
    chosen = args.only.split(",") if args.only else frameworks()
    args.out.mkdir(parents=True, exist_ok=True)
    for name in chosen:
        started = time.perf_counter()
        ids = importlib.import_module(f"models.examples.{name}").build(args.out)
        for model_id in ids:
            archive(args.out, model_id)
        print(f"{name}: {', '.join(ids)} ({time.perf_counter() - started:.1f}s)")


if __name__ == "__main__":
    main()
