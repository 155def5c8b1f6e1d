"""Per-customer Prophet models behind one multi-model endpoint, with a Zipf-distributed workload.

    make local-endpoint &        # in another terminal
    AWS_ENDPOINT_URL=http://127.0.0.1:8080 .venv/bin/python -m local.examples.multi_model \\
        --customers 200 --requests 1000 --memory-limit-mb 900

Trains ``--customers`` Prophet models (``models.energy``), uploads each as
``s3://BUCKET/customers/<customer>.tar.gz``, deploys a MultiModel endpoint on that prefix and sends
``--requests`` forecasts whose customers follow a Zipf law (a few customers are asked for
often, most rarely). Every call must be answered; with ``--memory-limit-mb`` small enough the
instance holds only some of the models, and the platform's evictions, downloads and cache hit
rate are printed (from the local endpoint's /metrics; on AWS, CloudWatch has them). Without
AWS_ENDPOINT_URL the same script deploys on AWS (set SAGEMAKER_IMAGE and SAGEMAKER_ROLE_ARN).
"""

import argparse
import random
import tempfile
import time
from pathlib import Path

from local.examples.steps import IMAGE, clients, deploy, local_metrics, metric_sum, tear_down, upload
from models import energy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--memory-limit-mb", type=int, help="MODEL_SERVER_MEMORY_LIMIT_MB of the instance")
    parser.add_argument("--bucket", default="local-endpoint-customers")
    parser.add_argument("--jobs", type=int, default=2, help="parallel Prophet fits")
    parser.add_argument("--keep", action="store_true", help="leave the endpoint running")
    args = parser.parse_args()
    sm, runtime, s3 = clients("sagemaker", "sagemaker-runtime", "s3")

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        started = time.perf_counter()
        readings = energy.generate(args.customers, rows_per_customer=1_500, seed=1)
        customers = sorted(energy.train(readings, root, jobs=args.jobs))
        print(f"trained {len(customers)} Prophet models in {time.perf_counter() - started:.0f}s")
        upload(s3, args.bucket, {f"customers/{c}.tar.gz": root / f"{c}.tar.gz" for c in customers})

    environment = {"MODEL_SERVER_MEMORY_LIMIT_MB": str(args.memory_limit_mb)} if args.memory_limit_mb else {}
    deploy(sm, "customers", {"Image": IMAGE, "Mode": "MultiModel", "ModelDataUrl": f"s3://{args.bucket}/customers/",
                             "Environment": environment})
    rng = random.Random(0)
    weights = [1 / rank for rank in range(1, len(customers) + 1)]
    started = time.perf_counter()
    answered = retried = 0
    for customer in rng.choices(customers, weights, k=args.requests):
        while True:
            try:
                runtime.invoke_endpoint(EndpointName="customers", TargetModel=f"{customer}.tar.gz",
                                        ContentType="application/json", Body=b'{"periods": 7}')["Body"].read()
                answered += 1
                break
            except runtime.exceptions.ModelNotReadyException:  # 429: still loading, as AWS advises, retry
                retried += 1
                time.sleep(1)
    wall = time.perf_counter() - started
    print(f"{answered}/{args.requests} answered in {wall:.1f}s ({retried} retries after 429)")
    text = local_metrics()
    if text is not None:
        hits = metric_sum(text, "sagemaker_model_cache_hit_total", endpoint="customers", result="hit")
        print(f"downloads {metric_sum(text, 'sagemaker_model_downloading_time_seconds_count', endpoint='customers'):.0f}, "
              f"loads {metric_sum(text, 'sagemaker_model_loading_time_seconds_count', endpoint='customers'):.0f}, "
              f"evictions {metric_sum(text, 'sagemaker_model_evictions_total', endpoint='customers'):.0f}, "
              f"cache hit rate {hits / max(answered, 1):.0%}, "
              f"loaded now {metric_sum(text, 'sagemaker_loaded_model_count', endpoint='customers'):.0f}")
    if not args.keep:
        tear_down(sm, "customers")


if __name__ == "__main__":
    main()
