"""The modules of the AWS containers that only training scripts use: importable, so that a script
that trains and serves in one file (``if __name__ == "__main__":`` around the training) loads, but
any name taken from them fails with a message saying why."""

from collections.abc import Callable
from typing import NoReturn


def training_only(module: str) -> Callable[[str], NoReturn]:
    """A module ``__getattr__`` for ``module``: every attribute is an AttributeError naming it
    (``from module import name`` turns it into ImportError)."""

    def __getattr__(name: str) -> NoReturn:
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(
            f"{module}.{name} is not provided: this server's {module} serves inference only "
            "(see docs/compat.md for the names it has)"
        )

    return __getattr__
