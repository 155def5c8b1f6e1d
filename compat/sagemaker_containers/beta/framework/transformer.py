"""Training only (see the ``sagemaker_containers`` docstring)."""

from _model_server_compat import training_only

__getattr__ = training_only(__name__)
