"""Generated training data, deterministic by seed."""

import numpy as np


def classification(rows: int = 300, features: int = 4, classes: int = 3, seed: int = 0):
    """Gaussian blobs, one per class: an iris-like table that any classifier learns quickly."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, size=(classes, features))
    labels = rng.integers(0, classes, size=rows)
    X = centres[labels] + rng.normal(0, 1, size=(rows, features))
    return X.astype(np.float64), labels


def regression(rows: int = 300, features: int = 4, seed: int = 0):
    """A noisy linear target."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, features))
    y = X @ rng.normal(size=features) + rng.normal(0, 0.1, size=rows)
    return X, y
