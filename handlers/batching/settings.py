"""A model's batching settings: the server's defaults (MODEL_SERVER_BATCH_MAX_SIZE,
MODEL_SERVER_BATCH_MAX_DELAY_MS, handed over in ``WorkerConfig.batching``) overridden by the
``batching.json`` in its directory: ``{"enabled": true, "max_batch_size": 32, "max_delay_ms": 0,
"concurrency": 2}``, each key optional.
"""

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson

from handlers.errors import ModelLoadError

SETTINGS_FILE = "batching.json"
MAX_BATCH_SIZE = 32
MAX_DELAY_MS = 0.0
CONCURRENCY = 1
LIMITS = {"max_batch_size": (1, 1_000_000), "max_delay_ms": (0.0, 10_000.0), "concurrency": (1, 1024)}
WHOLE = ("max_batch_size", "concurrency")


@dataclass(frozen=True)
class BatchSettings:
    """One model's batching: ``enabled`` None means the model directory did not say."""

    max_batch_size: int = MAX_BATCH_SIZE
    max_delay_ms: float = MAX_DELAY_MS
    enabled: bool | None = None
    concurrency: int = CONCURRENCY  # predicts of one kind running at once before requests queue


def settings(model_dir: Path, defaults: Mapping[str, float] | None = None) -> BatchSettings:
    """The server's defaults (``WorkerConfig.batching``) overridden by ``batching.json``."""
    base = BatchSettings(
        max_batch_size=int((defaults or {}).get("max_batch_size", MAX_BATCH_SIZE)),
        max_delay_ms=float((defaults or {}).get("max_delay_ms", MAX_DELAY_MS)),
    )
    path = model_dir / SETTINGS_FILE
    if not path.is_file():
        return base
    try:
        value = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as err:
        raise ModelLoadError(f"{SETTINGS_FILE} is not valid JSON: {err}") from None
    if not isinstance(value, dict):
        raise ModelLoadError(f"{SETTINGS_FILE} must be an object such as {{\"max_batch_size\": 32}}")
    unknown = sorted(set(value) - {"enabled", *LIMITS})
    if unknown:
        raise ModelLoadError(f"{SETTINGS_FILE}: unknown key(s) {', '.join(unknown)}; known: enabled, {', '.join(LIMITS)}")
    if "enabled" in value and not isinstance(value["enabled"], bool):
        raise ModelLoadError(f"{SETTINGS_FILE}: \"enabled\" must be true or false")
    changes: dict[str, Any] = {"enabled": value.get("enabled")}
    for name, (low, high) in LIMITS.items():
        if name not in value:
            continue
        number = value[name]
        whole = name in WHOLE
        if isinstance(number, bool) or not isinstance(number, int if whole else (int, float)) or not low <= number <= high:
            kind = "a whole number" if whole else "a number"
            raise ModelLoadError(f"{SETTINGS_FILE}: {name!r} must be {kind} from {low:g} to {high:g}; got {number!r}")
        changes[name] = number
    return replace(base, **changes)
