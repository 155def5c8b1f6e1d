"""scikit-learn examples: a classifier as ``model.joblib`` and a regression pipeline as ``model.skops``."""

from pathlib import Path

from models import data
from models.layout import model_dir


def build(root: Path) -> list[str]:
    import joblib
    import skops.io
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = data.classification(seed=1)
    joblib.dump(LogisticRegression(max_iter=500).fit(X, y), model_dir(root, "sklearn-iris") / "model.joblib")
    X, y = data.regression(seed=2)
    pipeline = make_pipeline(StandardScaler(), Ridge()).fit(X, y)
    skops.io.dump(pipeline, model_dir(root, "sklearn-ridge") / "model.skops")
    return ["sklearn-iris", "sklearn-ridge"]
