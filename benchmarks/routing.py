"""RANDOM vs LEAST_OUTSTANDING_REQUESTS on 3 instances with requests of mixed cost (issue 12).

    .venv/bin/python benchmarks/routing.py [--requests 600] [--clients 3] [--expensive 0.1] [--cost 0.2]

Starts the local endpoint, deploys one endpoint with two variants of 3 instances each (one
RANDOM, one LEAST_OUTSTANDING_REQUESTS) of a model whose request costs what its first value
says (``tests.builders.SLOW_CODE``: cheap requests ~1 ms, expensive ones ``--cost`` seconds),
each instance handling one request at a time (``MODEL_SERVER_WORKER_THREADS=1``, as a model that
uses the whole instance). The same seeded sequence of requests goes to each variant
(``TargetVariant``) from ``--clients`` closed-loop boto3 clients, and p50/p99 are printed side by
side, for all requests and for the cheap ones alone (those that queue behind an expensive one).
"""

import argparse
import random
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.local_endpoint import LocalEndpointProcess  # noqa: E402
from local.examples.steps import deploy  # noqa: E402
from models.layout import archive  # noqa: E402
from tests.builders import SLOW_CODE, sklearn_model  # noqa: E402

INSTANCES = 3
CHEAP = b"1,2,3,4"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def run(runtime, variant: str, workload: list[bytes], clients: int) -> tuple[list[tuple[bool, float]], float]:
    def one(body: bytes) -> tuple[bool, float]:
        started = time.perf_counter()
        runtime.invoke_endpoint(EndpointName="routing", Body=body, ContentType="text/csv", TargetVariant=variant)
        return body == CHEAP, time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        timings = list(pool.map(one, workload))
    return timings, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=600, help="requests per policy")
    parser.add_argument("--clients", type=int, default=INSTANCES, help="concurrent closed-loop clients (default: as many as instances)")
    parser.add_argument("--expensive", type=float, default=0.1, help="share of expensive requests")
    parser.add_argument("--cost", type=float, default=0.2, help="seconds an expensive request takes")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        sklearn_model(root / "mixed" / "model", code=SLOW_CODE)
        local = LocalEndpointProcess(root / "state")
        try:
            s3 = local.boto("s3")
            s3.create_bucket(Bucket="bench")
            s3.upload_file(str(archive(root, "mixed")), "bench", "mixed.tar.gz")
            variants = [
                {"VariantName": name, "ModelName": "routing", "InitialInstanceCount": INSTANCES,
                 "InstanceType": "ml.m5.large", "RoutingConfig": {"RoutingStrategy": strategy}}
                for name, strategy in (("random", "RANDOM"), ("lor", "LEAST_OUTSTANDING_REQUESTS"))
            ]
            started = time.perf_counter()
            deploy(local.boto("sagemaker"), "routing", {
                "Image": "local", "ModelDataUrl": "s3://bench/mixed.tar.gz",
                "Environment": {"MODEL_SERVER_WORKER_THREADS": "1"},
            }, variants=variants, timeout=600)
            print(f"{2 * INSTANCES} instances in service in {time.perf_counter() - started:.1f}s")
            runtime = local.boto("sagemaker-runtime", max_pool_connections=args.clients * 2)
            rng = random.Random(args.seed)
            expensive = f"{100 + args.cost:g},1,2,3".encode()
            workload = [expensive if rng.random() < args.expensive else CHEAP for _ in range(args.requests)]
            for variant in ("random", "lor"):  # warm-up: connections, first predictions
                run(runtime, variant, [CHEAP] * (args.clients * 4), args.clients)
            results = {variant: run(runtime, variant, workload, args.clients) for variant in ("random", "lor")}
        finally:
            local.stop()

    share = sum(body != CHEAP for body in workload) / len(workload)
    print(f"{args.requests} requests per policy, {share:.0%} costing {args.cost * 1000:.0f} ms, the rest ~1 ms; "
          f"{args.clients} clients; {INSTANCES} instances, one request at a time each\n")
    header = f"{'policy':<28}{'all p50':>9}{'all p99':>9}{'cheap p50':>11}{'cheap p99':>11}{'mean':>8}{'req/s':>8}"
    print(header)
    print("-" * len(header))
    figures = {}
    for variant, name in (("random", "RANDOM"), ("lor", "LEAST_OUTSTANDING_REQUESTS")):
        timings, wall = results[variant]
        every = [t for _, t in timings]
        cheap = [t for is_cheap, t in timings if is_cheap]
        figures[variant] = (percentile(every, 99), percentile(cheap, 99))
        print(f"{name:<28}{percentile(every, 50) * 1000:>7.1f}ms{percentile(every, 99) * 1000:>7.1f}ms"
              f"{percentile(cheap, 50) * 1000:>9.1f}ms{percentile(cheap, 99) * 1000:>9.1f}ms"
              f"{statistics.mean(every) * 1000:>6.1f}ms{len(every) / wall:>8.1f}")
    print(f"\nLOR / RANDOM: p99 all {figures['lor'][0] / figures['random'][0]:.2f}x, "
          f"p99 cheap {figures['lor'][1] / figures['random'][1]:.2f}x")


if __name__ == "__main__":
    main()
