"""TensorFlow examples: a small Keras classifier as a versioned SavedModel and as a ``.keras`` file.

``tensorflow-savedmodel`` holds ``classifier/0/`` (an older, barely trained version) and
``classifier/1/`` (the current one): their outputs differ, so a test can tell which one answers.
``tensorflow-keras`` holds the current version as ``model.keras``.
"""

from pathlib import Path

from models import data
from models.layout import model_dir

NAME = "classifier"


def _classifier(X, y, epochs: int, seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input(shape=(X.shape[1],), name="features"),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(int(y.max()) + 1, activation="softmax"),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    if epochs:
        model.fit(X, y, epochs=epochs, batch_size=32, verbose=0)
    return model


def build(root: Path) -> list[str]:
    X, y = data.classification(seed=5)
    X = X.astype("float32")
    current = _classifier(X, y, epochs=10, seed=0)
    older = _classifier(X, y, epochs=0, seed=1)  # untrained: clearly different outputs

    saved = model_dir(root, "tensorflow-savedmodel")
    older.export(str(saved / NAME / "0"), verbose=False)
    current.export(str(saved / NAME / "1"), verbose=False)

    current.save(model_dir(root, "tensorflow-keras") / "model.keras")
    return ["tensorflow-savedmodel", "tensorflow-keras"]
