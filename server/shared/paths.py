"""Where the project is: the folder holding ``server`` and ``handlers``. Children (workers,
probes, the report) start there, with it on their path, so that ``python -m server...`` finds this
checkout whatever the caller's working directory."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
