"""Training only (see the ``sagemaker_xgboost_container`` docstring)."""

from _model_server_compat import training_only

__getattr__ = training_only(__name__)
