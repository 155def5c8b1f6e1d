"""A serial inference pipeline: a scikit-learn scaler whose CSV output feeds an XGBoost model.

Served as two containers, as the platform chains them: ``pipeline-preprocess`` answers CSV
(SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT=text/csv) and ``pipeline-xgboost`` takes it.
"""

from pathlib import Path

from models import data
from models.layout import model_dir


def build(root: Path) -> list[str]:
    import joblib
    import xgboost
    from sklearn.preprocessing import StandardScaler

    X, y = data.classification(rows=400, classes=2, seed=11)
    X = X * [1, 100, 0.01, 5] + [0, 50, 3, -7]  # features on very different scales
    scaler = StandardScaler().fit(X)
    joblib.dump(scaler, model_dir(root, "pipeline-preprocess") / "model.joblib")
    booster = xgboost.train(
        {"objective": "binary:logistic", "max_depth": 3}, xgboost.DMatrix(scaler.transform(X), label=y), 20
    )
    booster.save_model(model_dir(root, "pipeline-xgboost") / "xgboost-model.json")
    return ["pipeline-preprocess", "pipeline-xgboost"]
