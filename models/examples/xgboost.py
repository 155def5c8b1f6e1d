"""XGBoost examples: a binary classifier as ``xgboost-model`` (UBJ) and a regressor as ``model.json``."""

from pathlib import Path

from models import data
from models.layout import model_dir


def build(root: Path) -> list[str]:
    import warnings

    import xgboost

    warnings.filterwarnings("ignore", message=".*UBJSON format as default.*")  # the name SageMaker uses has no extension

    X, y = data.classification(classes=2, seed=3)
    booster = xgboost.train({"objective": "binary:logistic", "max_depth": 3}, xgboost.DMatrix(X, label=y), 20)
    booster.save_model(model_dir(root, "xgboost-binary") / "xgboost-model")
    X, y = data.regression(seed=4)
    booster = xgboost.train({"objective": "reg:squarederror"}, xgboost.DMatrix(X, label=y), 20)
    booster.save_model(model_dir(root, "xgboost-regressor") / "model.json")
    return ["xgboost-binary", "xgboost-regressor"]
