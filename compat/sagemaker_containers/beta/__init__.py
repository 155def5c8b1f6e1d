"""The ``beta`` namespace of ``sagemaker_containers``."""
