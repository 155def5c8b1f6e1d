"""What every endpoint shares: where instances live, the S3 behind the port, one HTTP client."""

import random
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from local.artifacts import Storage


@dataclass
class Platform:
    state_dir: Path
    storage: Storage
    client: httpx.AsyncClient
    region: str
    ready_timeout: float = 60.0  # a multi-model client's wait for its model before a 429
    runner: str = "process"  # or "docker": each container is the model's Image (local.instances)
    rng: random.Random = field(default_factory=random.Random)
    url: str = ""  # this endpoint's own address as an instance reaches it (its S3 is there too)
