"""Settings: every environment variable the server reads, parsed once at start (in the front).

A bad value stops startup with a message naming the variable. Nothing else in the server reads
``os.environ``; workers get what they need from the front (``server.shared.protocol.WorkerConfig`` and
the environment ``server.shared.environment.worker_environment`` builds). Variables the server only has to
check (``SAGEMAKER_SAFE_PORT_RANGE``: it opens no second port; ``SAGEMAKER_BATCH``) are
validated and not kept.
"""

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.shared.environment import FPMATH_VARIABLES

Env = Mapping[str, str]


class ConfigError(Exception):
    """A variable has a value the server cannot use."""


def _get(env: Env, name: str) -> str | None:
    value = env.get(name)
    return value.strip() if value is not None and value.strip() else None


def _optional_bool(env: Env, name: str) -> bool | None:
    value = _get(env, name)
    if value is None:
        return None
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise ConfigError(f"{name}={value!r}: expected true or false")


def _bool(env: Env, name: str, default: bool) -> bool:
    value = _optional_bool(env, name)
    return default if value is None else value


def _number(env: Env, name: str, default: Any, low: float, high: float, kind: type = int) -> Any:
    value = _get(env, name)
    if value is None:
        return default
    try:
        number = kind(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r}: expected a {'whole ' if kind is int else ''}number") from None
    if not low <= number <= high:
        raise ConfigError(f"{name}={value!r}: must be between {low} and {high}")
    return number


def _choice(env: Env, name: str, default: str, choices: tuple[str, ...]) -> str:
    value = _get(env, name)
    if value is None:
        return default
    if value.upper() not in choices:
        raise ConfigError(f"{name}={value!r}: expected one of {', '.join(choices)}")
    return value.upper()


def _port_range(env: Env, name: str) -> tuple[int, int] | None:
    value = _get(env, name)
    if value is None:
        return None
    try:
        low, high = (int(part) for part in value.split("-"))
    except ValueError:
        raise ConfigError(f"{name}={value!r}: expected LOW-HIGH, e.g. 8081-8089") from None
    if not 1 <= low <= high <= 65535:
        raise ConfigError(f"{name}={value!r}: expected 1 <= LOW <= HIGH <= 65535")
    return low, high


FPMATH_MODES = ("STRICT", "BF16", "F16", "TF32", "ANY")  # oneDNN's default fpmath modes


def fpmath_mode(env: Env) -> str | None:
    """oneDNN's default fpmath mode for the workers, or None to leave oneDNN's own (STRICT).

    MODEL_SERVER_BF16_FASTMATH, when set, decides: true is BF16, false is STRICT. Otherwise
    ONEDNN_DEFAULT_FPMATH_MODE, then DNNL_DEFAULT_FPMATH_MODE (oneDNN reads the two names in that
    order). The workers' handlers get it in ``WorkerConfig.fpmath_mode`` (``Framework.setup``);
    oneDNN itself reads it from the environment, where ``server.shared.environment.worker_environment``
    gives the workers both names with this value.
    """
    fastmath = _optional_bool(env, "MODEL_SERVER_BF16_FASTMATH")
    modes = {}
    for name in FPMATH_VARIABLES:
        value = _get(env, name)
        if value is not None and value.upper() not in FPMATH_MODES:
            raise ConfigError(f"{name}={value!r}: expected one of {', '.join(FPMATH_MODES)}")
        modes[name] = value.upper() if value is not None else None
    if fastmath is not None:
        return "BF16" if fastmath else "STRICT"
    return next((mode for mode in modes.values() if mode), None)  # in oneDNN's order


def warm_frameworks(env: Env, known: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """MODEL_SERVER_WARM_FRAMEWORKS: ("auto" | "none" | "list", the frameworks listed)."""
    value = _get(env, "MODEL_SERVER_WARM_FRAMEWORKS")
    if value is None or value.lower() == "auto":
        return "auto", ()
    if value.lower() == "none":
        return "none", ()
    listed = tuple(dict.fromkeys(part.strip().lower() for part in value.split(",") if part.strip()))
    unknown = [name for name in listed if name not in known]
    if unknown or not listed:
        raise ConfigError(
            f"MODEL_SERVER_WARM_FRAMEWORKS={value!r}: expected auto, none or a comma-separated list of {', '.join(known)}"
        )
    return "list", listed


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    multi_model: bool
    model_dir: Path
    models_root: Path
    preload: bool
    framework: str | None
    timeout_seconds: float
    max_payload_bytes: int
    default_accept: str
    batch_strategy: str
    max_concurrent_transforms: int
    program: str
    packages_root: Path
    replicas_per_model: int  # replicas of every model at load (SAGEMAKER_MODEL_SERVER_WORKERS)
    slots_per_framework: int  # worker slots of a framework: SAGEMAKER_MODEL_SERVER_WORKERS, else vCPUs - 1
    auto_replicate: bool
    replicate_at: int  # outstanding requests on a replica's worker that make a model hot
    worker_threads: int
    load_threads: int
    load_timeout_seconds: float
    intra_op_threads: int
    memory_limit_bytes: int | None
    memory_headroom_bytes: int
    startup_timeout_seconds: float
    log_level: str
    # oneDNN's fpmath mode for the workers (MODEL_SERVER_BF16_FASTMATH or the oneDNN variables).
    fpmath_mode: str | None = None
    # MODEL_SERVER_ACCEL_REPORT: log the acceleration report (server.acceleration) at start.
    accel_report: bool = False
    # SAGEMAKER_SUBMIT_DIRECTORY: the SDK's code delivery (s3://.../sourcedir.tar.gz, file://..., a local
    # path), and where boto3 finds S3 for it (AWS_REGION / AWS_DEFAULT_REGION, AWS_ENDPOINT_URL_S3 /
    # AWS_ENDPOINT_URL); server.front.submit_dir fetches it at start and fills in one of the two after.
    submit_directory_url: str | None = None
    aws_region: str | None = None
    s3_endpoint_url: str | None = None
    submit_dir: Path | None = None  # the local directory holding the fetched code
    submit_error: tuple[int, str] | None = None  # multi-model mode: (status, message) of a failed fetch
    # MODEL_SERVER_MAX_DECODED_FACTOR: a request body may decode to at most this many times the
    # payload limit (a zip bomb or an NPY header claiming petabytes is a 413 or 400, not an OOM).
    max_decoded_factor: float = 4.0
    # Dynamic batching defaults (handlers.batching; a model's batching.json overrides them).
    batch_max_size: int = 32
    batch_max_delay_ms: float = 0.0
    # Standby workers (server.front.supervisor.standby): MODEL_SERVER_WARM_FRAMEWORKS as a mode
    # ("auto", "none", "list") and the frameworks listed; MODEL_SERVER_WARM_IDLE_SECONDS.
    warm_mode: str = "auto"
    warm_frameworks: tuple[str, ...] = ()
    warm_idle_seconds: float = 600.0

    @classmethod
    def from_env(cls, env: Env | None = None) -> "Settings":
        env = os.environ if env is None else env
        from handlers import FALLBACK, FRAMEWORKS

        cpus = len(os.sched_getaffinity(0))
        explicit_workers = _number(env, "SAGEMAKER_MODEL_SERVER_WORKERS", None, 1, 64)
        workers = explicit_workers or 1
        worker_threads = _number(env, "MODEL_SERVER_WORKER_THREADS", 4, 1, 256)
        framework = _get(env, "MODEL_SERVER_FRAMEWORK")
        if framework is not None and framework.lower() not in FRAMEWORKS + (FALLBACK,):
            raise ConfigError(
                f"MODEL_SERVER_FRAMEWORK={framework!r}: expected one of {', '.join(FRAMEWORKS + (FALLBACK,))}"
            )
        memory_limit = _number(env, "MODEL_SERVER_MEMORY_LIMIT_MB", None, 64, 16 * 2**20)
        log_level = _get(env, "MODEL_SERVER_LOG_LEVEL") or "INFO"
        if log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError(f"MODEL_SERVER_LOG_LEVEL={log_level!r}: expected DEBUG, INFO, WARNING or ERROR")
        accept = (_get(env, "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT") or "application/json").lower()
        from handlers.codecs.media import ENCODABLE, media_type

        if media_type(accept) not in ENCODABLE:
            raise ConfigError(
                f"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT={accept!r}: expected one of {', '.join(ENCODABLE)}"
            )
        warm_mode, warm_listed = warm_frameworks(env, FRAMEWORKS + (FALLBACK,))
        _port_range(env, "SAGEMAKER_SAFE_PORT_RANGE")
        _bool(env, "SAGEMAKER_BATCH", False)
        return cls(
            host=_get(env, "MODEL_SERVER_HOST") or "0.0.0.0",
            port=_number(env, "SAGEMAKER_BIND_TO_PORT", 8080, 1, 65535),
            multi_model=_bool(env, "SAGEMAKER_MULTI_MODEL", False),
            model_dir=Path(_get(env, "MODEL_SERVER_MODEL_DIR") or "/opt/ml/model").absolute(),
            models_root=Path(_get(env, "MODEL_SERVER_MODELS_ROOT") or "/opt/ml/models").absolute(),
            preload=_bool(env, "MODEL_SERVER_PRELOAD", False),
            framework=framework.lower() if framework else None,
            timeout_seconds=_number(env, "SAGEMAKER_MODEL_SERVER_TIMEOUT_SECONDS", 60.0, 0.1, 3600.0, float),
            max_payload_bytes=int(_number(env, "SAGEMAKER_MAX_PAYLOAD_IN_MB", 6.0, 0.001, 1024.0, float) * 2**20),
            default_accept=media_type(accept),
            batch_strategy=_choice(env, "SAGEMAKER_BATCH_STRATEGY", "MULTI_RECORD", ("SINGLE_RECORD", "MULTI_RECORD")),
            max_concurrent_transforms=_number(env, "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS", cpus * workers, 1, 1024),
            program=_get(env, "SAGEMAKER_PROGRAM") or "inference.py",
            packages_root=Path(
                _get(env, "MODEL_SERVER_PACKAGES_DIR") or Path(tempfile.gettempdir()) / "model-server-packages"
            ).absolute(),
            replicas_per_model=workers,
            # Replicas beyond the cores the front leaves free only compete with it (measured on 2 cores:
            # a second replica gained nothing and tripled p99), so one core stays the front's.
            slots_per_framework=explicit_workers or _number(env, "MODEL_SERVER_MAX_WORKERS", max(1, cpus - 1), 1, 64),
            auto_replicate=_bool(env, "MODEL_SERVER_AUTO_REPLICATE", True) and explicit_workers is None,
            replicate_at=_number(env, "MODEL_SERVER_REPLICATE_AT", worker_threads, 1, 4096),
            worker_threads=worker_threads,
            load_threads=_number(env, "MODEL_SERVER_LOAD_THREADS", 2, 1, 64),
            # Well under the platform's 360 s, so that a stuck load frees its name while it waits.
            load_timeout_seconds=_number(env, "MODEL_SERVER_LOAD_TIMEOUT_SECONDS", 180.0, 1.0, 3600.0, float),
            # The front's core is left out here too: on 2 cores, two math threads beside the front
            # gave a GRU 4,500 batched req/s at 32 clients and one gave 13,900 (and a lone request
            # 0.57 against 0.47 ms); an MLP's figures held or rose.
            intra_op_threads=_number(env, "MODEL_SERVER_INTRA_OP_THREADS", max(1, (cpus - 1) // workers), 1, 1024),
            memory_limit_bytes=memory_limit * 2**20 if memory_limit else None,
            memory_headroom_bytes=_number(env, "MODEL_SERVER_MEMORY_HEADROOM_MB", 256, 0, 2**20) * 2**20,
            startup_timeout_seconds=_number(env, "MODEL_SERVER_WORKER_START_TIMEOUT_SECONDS", 300.0, 1.0, 3600.0, float),
            log_level=log_level.upper(),
            fpmath_mode=fpmath_mode(env),
            accel_report=_bool(env, "MODEL_SERVER_ACCEL_REPORT", False),
            submit_directory_url=_get(env, "SAGEMAKER_SUBMIT_DIRECTORY"),
            aws_region=_get(env, "AWS_REGION") or _get(env, "AWS_DEFAULT_REGION"),
            s3_endpoint_url=_get(env, "AWS_ENDPOINT_URL_S3") or _get(env, "AWS_ENDPOINT_URL"),
            max_decoded_factor=_number(env, "MODEL_SERVER_MAX_DECODED_FACTOR", 4.0, 1.0, 1024.0, float),
            batch_max_size=_number(env, "MODEL_SERVER_BATCH_MAX_SIZE", 32, 1, 1_000_000),
            batch_max_delay_ms=_number(env, "MODEL_SERVER_BATCH_MAX_DELAY_MS", 0.0, 0.0, 10_000.0, float),
            warm_mode=warm_mode,
            warm_frameworks=warm_listed,
            warm_idle_seconds=_number(env, "MODEL_SERVER_WARM_IDLE_SECONDS", 600.0, 0.1, 7 * 86400.0, float),
        )
