"""The model registry: which models exist, by name, in a stable order for ListModels.

Names are kept sorted, so a page token is simply the last name of the previous page: pages stay
consistent while models come and go, and no server-side cursor needs keeping.
"""

import asyncio
import base64
import binascii
import bisect
import itertools
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from handlers.errors import BadInput, Conflict, ServingError
from server.front.placement import Heat
from server.front.supervisor.process import WorkerProcess

MAX_NAME_LENGTH = 256
DEFAULT_PAGE = 100
MAX_PAGE = 1000
_COPIES = itertools.count(1)  # every ModelEntry's number, for the worker to tell copies of one name apart


@dataclass
class ModelEntry:
    name: str
    url: str
    path: Path
    framework: str
    state: str = "loading"  # "loading" (first load or reload after a worker crash), "ready" or "quarantined"
    replicas: list[WorkerProcess] = field(default_factory=list)  # the workers holding it, ready to serve
    settled: asyncio.Event = field(default_factory=asyncio.Event)  # set when a load ends, well or not
    failure: ServingError | None = None  # why the last load failed, for requests that waited on it
    estimate_bytes: int = 0
    memory_bytes: int = 0
    load_seconds: float = 0.0
    loaded_at: float = 0.0
    invocations: int = 0
    heat: Heat = field(default_factory=Heat)  # saturation of its replicas' workers (server.front.placement)
    last_invoked_at: float | None = None
    replica_loads: set[asyncio.Future[None]] = field(default_factory=set)  # loads of a replica under way
    copy: int = field(default_factory=_COPIES.__next__)  # which load of its name this is: loads and unloads say so

    def describe(self) -> dict[str, Any]:
        return {
            "modelName": self.name,
            "modelUrl": self.url,
            "framework": self.framework,
            "status": self.state.upper(),
            "loadedAt": self.loaded_at or None,
            "loadSeconds": round(self.load_seconds, 4),
            "memoryBytes": self.memory_bytes,
            "invocations": self.invocations,
            "lastInvokedAt": self.last_invoked_at,
            "worker": self.worker.name if self.worker else None,
            "workerPid": self.worker.pid if self.worker else None,
            "replicas": [{"worker": w.name, "workerPid": w.pid} for w in self.replicas],
        }

    @property
    def worker(self) -> WorkerProcess | None:
        """Its first replica's worker (None while it has none)."""
        return self.replicas[0] if self.replicas else None

    def mark_ready(self, memory_bytes: int, seconds: float) -> None:
        self.state, self.failure = "ready", None
        self.memory_bytes, self.load_seconds, self.loaded_at = memory_bytes, seconds, time.time()
        self.settled.set()


def check_name(name: object) -> str:
    """A model name is opaque, untrusted text: refuse what could not round-trip through a URL path."""
    if not isinstance(name, str) or not name:
        raise BadInput("model_name must be a non-empty string")
    if len(name) > MAX_NAME_LENGTH:
        raise BadInput(f"model_name is longer than {MAX_NAME_LENGTH} characters")
    if name in (".", ".."):
        raise BadInput("model_name cannot be '.' or '..'")
    for char in name:
        if char in "/\\":
            raise BadInput("model_name cannot contain '/' or '\\'")
        if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            raise BadInput(f"model_name contains a control character (U+{ord(char):04X})")
    return name


def _token(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode()).decode().rstrip("=")


def _untoken(token: str) -> str:
    try:
        padded = (token + "=" * (-len(token) % 4)).encode()
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadInput("next_page_token is not a token this server issued") from None


class Registry:
    def __init__(self) -> None:
        self._entries: dict[str, ModelEntry] = {}
        self._names: list[str] = []

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, name: str) -> ModelEntry | None:
        return self._entries.get(name)

    def entries(self) -> list[ModelEntry]:
        return [self._entries[name] for name in self._names]

    def add(self, entry: ModelEntry) -> None:
        if entry.name in self._entries:
            raise Conflict("a model with this name is already loaded")
        self._entries[entry.name] = entry
        bisect.insort(self._names, entry.name)

    def remove(self, entry: ModelEntry) -> None:
        if self._entries.get(entry.name) is entry:
            del self._entries[entry.name]
            del self._names[bisect.bisect_left(self._names, entry.name)]

    def page(self, token: str | None, limit: str | None) -> tuple[list[ModelEntry], str | None]:
        try:
            size = DEFAULT_PAGE if limit is None else int(limit)
        except ValueError:
            raise BadInput("limit must be a whole number") from None
        if not 1 <= size <= MAX_PAGE:
            raise BadInput(f"limit must be between 1 and {MAX_PAGE}")
        start = bisect.bisect_right(self._names, _untoken(token)) if token else 0
        names = self._names[start : start + size]
        more = start + size < len(self._names)
        return [self._entries[n] for n in names], _token(names[-1]) if more and names else None
