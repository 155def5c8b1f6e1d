"""``python -m server serve``: how the platform (``docker run IMAGE serve``) starts the server."""

import argparse
import logging
import sys

from server.config import ConfigError, Settings
from server.front import submit_dir
from server.shared.logs import setup_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server", description="SageMaker-compatible model server")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="start the server (SAGEMAKER_* and MODEL_SERVER_* variables)")
    serve.add_argument("--host", help="address to bind (default MODEL_SERVER_HOST or 0.0.0.0); 127.0.0.1 for local use")
    serve.add_argument("--port", type=int, help="port (default SAGEMAKER_BIND_TO_PORT or 8080)")
    accel = commands.add_parser("accel-report", help="print, as JSON, the math each framework really does on this CPU")
    accel.add_argument("--framework", action="append", choices=("torch", "tensorflow", "onnxruntime"),
                       help="probe only this framework (repeatable; default: all three)")
    accel.add_argument("--compact", action="store_true", help="one line of JSON")
    accel.add_argument("--nice", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.command == "accel-report":
        from server.diagnostics.report import command

        return command(args.framework, args.compact, args.nice)

    try:
        settings = Settings.from_env()
    except ConfigError as err:
        print(f"configuration error: {err}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level, "front")
    try:
        settings = submit_dir.prepare(settings)  # SAGEMAKER_SUBMIT_DIRECTORY, fetched before any worker starts
    except ConfigError as err:
        print(f"configuration error: {err}", file=sys.stderr)
        return 2
    import uvicorn

    from server.front.http.app import build_app
    from server.front.http.connections import body_timeout, guarded_protocol
    from server.front.http.graceful import GracefulServer

    host = args.host or settings.host
    port = args.port or settings.port
    logging.getLogger("front").info(
        "serving on %s:%d (%s mode)", host, port, "multi-model" if settings.multi_model else "single-model"
    )
    config = uvicorn.Config(
        build_app(settings),
        host=host,
        port=port,
        loop="uvloop",
        # httptools, with bounds on connections waiting on their clients (server.front.http.connections)
        http=guarded_protocol(body_timeout(settings.max_payload_bytes)),
        access_log=False,
        log_config=None,
        timeout_keep_alive=75,  # longer than the platform's idle connection timeout
        timeout_graceful_shutdown=25,  # the platform sends SIGKILL 30 s after SIGTERM
        backlog=2048,
    )
    GracefulServer(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
