"""Functions named now and imported at their first call.

The front imports every handler module to detect models (``handlers.detect``) and must stay free
of NumPy and the frameworks (``tests/fast/test_boundaries.py``): a handler module names the
functions whose modules need them with ``deferred``, and the worker, the one process that calls
them, imports those modules then.
"""

import importlib
from collections.abc import Callable
from typing import Any


def deferred(module: str, name: str) -> Callable[..., Any]:
    """A function that imports ``module`` at its first call and from then on calls ``module.name``."""
    found: list[Callable[..., Any]] = []

    def call(*args: Any, **kwargs: Any) -> Any:
        if not found:
            found.append(getattr(importlib.import_module(module), name))
        return found[0](*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"``{module}.{name}``, imported at the first call."
    return call
