"""``python -m local serve [--port 8080]``: a local SageMaker endpoint on one loopback port.

Every client takes the same ``endpoint_url`` (``http://127.0.0.1:PORT``): ``sagemaker``,
``sagemaker-runtime``, ``s3``, ``sns``, ``sqs``. Instances live under ``--state-dir`` (a fresh
temporary directory by default), one directory each, with their containers' logs.
"""

import argparse
import logging
import random
import shutil
import sys
import tempfile
from pathlib import Path

import httpx


def reachable(host: str) -> str:
    """The address a process on this machine reaches a server bound to ``host`` by."""
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local", description="a local SageMaker endpoint")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="answer sagemaker, sagemaker-runtime, S3, SNS and SQS on one port")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback only)")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--region", default="us-east-1", help="the region in ARNs and notifications")
    serve.add_argument("--state-dir", type=Path, help="where instances live (default: a temporary directory)")
    serve.add_argument("--model-ready-timeout", type=float, default=60.0,
                       help="seconds a multi-model invocation waits for its model before a 429 (platform: 60)")
    serve.add_argument("--seed", type=int, help="seed of the routing's random choices")
    serve.add_argument("--runner", choices=("process", "docker"), default="process",
                       help="instances as processes of this checkout (default) or as the model's Image run by docker")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request to every instance

    import uvicorn

    from local.app import build_app
    from local.artifacts import Storage
    from local.control_plane import ControlPlane
    from local.platform import Platform
    from local.proxy import MotoBackend

    temporary = args.state_dir is None
    state_dir = Path(tempfile.mkdtemp(prefix="local-endpoint-")) if temporary else args.state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    backend = MotoBackend()
    backend.start()

    def cleanup() -> None:
        backend.stop()
        if temporary:
            shutil.rmtree(state_dir, ignore_errors=True)

    platform = Platform(
        state_dir=state_dir,
        storage=Storage(backend.url, args.region),
        client=httpx.AsyncClient(timeout=None, limits=httpx.Limits(max_connections=1000,
                                                                   max_keepalive_connections=100)),
        region=args.region,
        ready_timeout=args.model_ready_timeout,
        rng=random.Random(args.seed),
        runner=args.runner,
        url=f"http://{reachable(args.host)}:{args.port}",
    )
    app = build_app(ControlPlane(platform), backend.url, on_shutdown=cleanup)
    logging.getLogger("local").info(
        "local SageMaker endpoint on http://%s:%d (instances under %s)", args.host, args.port, state_dir
    )
    config = uvicorn.Config(app, host=args.host, port=args.port, loop="uvloop", http="httptools",
                            access_log=False, log_config=None, timeout_graceful_shutdown=40)
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
