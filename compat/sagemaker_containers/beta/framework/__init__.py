"""``sagemaker_containers.beta.framework``: ``content_types``, ``encoders``, ``errors``, ``worker``
(and the training-only ``env``, ``modules``, ``transformer``)."""

from sagemaker_containers.beta.framework import content_types, encoders, env, errors, modules, transformer, worker

__all__ = ["content_types", "encoders", "env", "errors", "modules", "transformer", "worker"]
