"""The layout the platform hands the container: ``<root>/<id>/model/...`` plus ``<root>/<id>.tar.gz``."""

import shutil
import tarfile
from pathlib import Path


def model_dir(root: Path, model_id: str) -> Path:
    """A fresh, empty ``<root>/<id>/model`` directory."""
    target = root / model_id / "model"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    return target


def archive(root: Path, model_id: str) -> Path:
    """``<root>/<id>.tar.gz`` of the model directory's contents, as ``model.tar.gz`` would hold them."""
    source = root / model_id / "model"
    target = root / f"{model_id}.tar.gz"
    with tarfile.open(target, "w:gz") as tar:
        for path in sorted(source.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(source)), recursive=False)
    return target
