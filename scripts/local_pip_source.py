"""The package sources pip is configured with on this machine, handed to an image build.

    python scripts/local_pip_source.py PIP_CONF_OUT

A build here cannot always reach every index a user's can (PyTorch's CPU index, say), while pip
on this machine may be configured with wheels on local disk or a mirror. This reads pip's own
configuration (``pip config list``: files and PIP_* variables alike), writes the index settings
that matter to a build (index-url, extra-index-url, find-links; not caps or constraints, the
image's pins decide) as a pip.conf to PIP_CONF_OUT, and prints one ``--volume=DIR:DIR:ro``
option per local directory they name, so that the build sees those directories at the same
paths. Nothing about this machine is written into the repository: it is read at run time.
"""

import shlex
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

KEYS = ("index-url", "extra-index-url", "find-links")


def configured() -> dict[str, list[str]]:
    """key -> values, environment over user over site files, as pip itself ranks them."""
    listing = subprocess.run([sys.executable, "-m", "pip", "config", "list"],
                             capture_output=True, text=True, check=True).stdout
    found: dict[str, list[str]] = {}
    for line in listing.splitlines():
        name, _, value = line.partition("=")
        scope, _, key = name.rpartition(".")
        if key in KEYS and (scope == ":env:" or key not in found):
            found[key] = shlex.split(value.strip().strip("'\""))  # later lines and the environment win
    return found


def local_dir(location: str) -> Path | None:
    if location.startswith("file:"):
        location = unquote(urlparse(location).path)
    elif "://" in location:
        return None
    path = Path(location)
    if not path.exists():
        return None
    # a file:// simple index links to files beside it (../../files/...): mount its parent too
    return path.parent if path.name == "simple" else path


def main() -> None:
    out = Path(sys.argv[1])
    found = configured()
    lines = ["[global]"] + [f"{key} = {' '.join(values)}" for key, values in found.items()]
    out.write_text("\n".join(lines) + "\n")
    dirs = sorted({d for values in found.values() for v in values if (d := local_dir(v))})
    print(" ".join(f"--volume={d}:{d}:ro" for d in dirs))


if __name__ == "__main__":
    main()
