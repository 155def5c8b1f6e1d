"""The models of ``peers.py``, trained on generated data by the project's own builders.

Hot models: ``sklearn-iris`` (LogisticRegression, ``models/examples/sklearn.py``),
``xgboost-binary`` (``models/examples/xgboost.py``) and ``pytorch-mlp`` (a TorchScript MLP,
``models/examples/pytorch.py``). Many models: ``m0000``... from ``density.build_models``
(scikit-learn and XGBoost in turn, each on its own data). Every model has four features, so one
request body fits them all.

Our server reads the platform's layout (``<root>/<name>/model/``) as it is. The peers get
``canonical(model)``: a directory holding one file under the name each of their loaders
expects (``model.joblib``, ``model.ubj``, ``model.pt``), a link to the same bytes.
"""

from dataclasses import dataclass
from pathlib import Path

from benchmarks.density import build_models
from models.examples import pytorch, sklearn, xgboost

FILE_NAMES = {"sklearn": "model.joblib", "xgboost": "model.ubj", "torch": "model.pt"}


@dataclass(frozen=True)
class Model:
    name: str
    kind: str  # "sklearn", "xgboost" or "torch"
    directory: Path  # the platform's layout: <root>/<name>/model
    source: Path  # the one artifact file inside it

    def canonical(self) -> Path:
        """``<root>/<name>/canonical/`` with the artifact linked under the peers' file name."""
        target = self.directory.parent / "canonical"
        link = target / FILE_NAMES[self.kind]
        if not link.exists():
            target.mkdir(exist_ok=True)
            link.symlink_to(self.source)
        return target

    def canonical_file(self) -> Path:
        return self.canonical() / FILE_NAMES[self.kind]


def _one(root: Path, name: str, kind: str) -> Model:
    directory = root / name / "model"
    (source,) = [path for path in directory.iterdir() if path.is_file()]
    return Model(name, kind, directory, source)


def build(root: Path, many: int) -> tuple[dict[str, Model], list[Model]]:
    """The hot models by kind, and ``many`` small models; all under ``root``."""
    sklearn.build(root)
    xgboost.build(root)
    pytorch.build(root)
    hot = {"sklearn": _one(root, "sklearn-iris", "sklearn"), "xgboost": _one(root, "xgboost-binary", "xgboost"),
           "torch": _one(root, "pytorch-mlp", "torch")}
    made = build_models(root, many)
    return hot, [_one(root, name, "sklearn" if path.joinpath("model.joblib").exists() else "xgboost")
                 for name, path in made]
