"""Two real-sized networks, each as TorchScript, ONNX and a TensorFlow SavedModel (issue 22).

- ``resnet18``: torchvision's ResNet-18 (``resnet18(weights=None)``: its architecture, random
  weights; nothing is downloaded) on one 3 x 224 x 224 image, 1000 logits out; in Keras the same
  shape written by hand (7x7 stem, four stages of two basic blocks, 64-128-256-512 channels).
- ``encoder``: a BERT-tiny-sized transformer encoder: token embedding plus a learned position
  embedding, 2 layers of 128 hidden units, 2 heads and a 512-unit feed-forward, over 128 tokens,
  with a classification head (2 classes) on the first token.

Every artifact takes the same request: the image in NCHW float32 (the Keras model permutes it to
the channels-last layout TensorFlow's CPU kernels want) or the token ids as int64. The PyTorch
handler turns every input into float32, so the TorchScript encoder casts its input back to
token ids itself. Weights are random (seeded): what is measured is speed, not accuracy.

``build(root)`` writes ``<root>/<network>-<framework>/model/`` for the six (network, framework)
pairs and returns their ids; ``python -m models.networks --out DIR [--only resnet18]`` does the
same from the command line (the benchmarks build in a child process, so that the process
driving the load never holds two frameworks). Not in ``models/examples``: a ResNet-18 is 45 MB
in each of three forms, too big to be built with every example.
"""

import argparse
from pathlib import Path

import numpy as np

from models.layout import model_dir

NETWORKS = ("resnet18", "encoder")
FRAMEWORKS = ("pytorch", "onnx", "tensorflow")
IMAGE = (3, 224, 224)
TOKENS, HIDDEN, HEADS, LAYERS, FEED_FORWARD, VOCABULARY, CLASSES = 128, 128, 2, 2, 512, 1000, 2


def request(network: str, rows: int = 1, seed: int = 1) -> np.ndarray:
    """``rows`` inputs of ``network``, generated: images in [0, 1), or token ids."""
    rng = np.random.default_rng(seed)
    if network == "resnet18":
        return rng.random((rows, *IMAGE), dtype=np.float32)
    return rng.integers(0, VOCABULARY, size=(rows, TOKENS), dtype=np.int64)


# ---------------------------------------------------------------------------------- PyTorch


def _torch_encoder():
    import torch
    from torch import nn

    class Encoder(nn.Module):
        """Embedding + position, ``LAYERS`` transformer layers, a linear head on token 0."""

        def __init__(self) -> None:
            super().__init__()
            self.embedding = nn.Embedding(VOCABULARY, HIDDEN)
            self.position = nn.Parameter(torch.randn(1, TOKENS, HIDDEN) * 0.02)
            layer = nn.TransformerEncoderLayer(HIDDEN, HEADS, FEED_FORWARD, dropout=0.0, activation="gelu",
                                               batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, LAYERS, enable_nested_tensor=False)
            self.head = nn.Linear(HIDDEN, CLASSES)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            hidden = self.encoder(self.embedding(ids.long()) + self.position)
            return self.head(hidden[:, 0])

    return Encoder()


def torch_network(network: str):
    """The eval-mode ``nn.Module`` of ``network`` (seeded)."""
    import torch
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None) if network == "resnet18" else _torch_encoder()
    return model.eval()


def write_torchscript(network: str, target: Path) -> None:
    import torch

    model = torch_network(network)
    example = torch.from_numpy(request(network))
    with torch.no_grad():
        traced = torch.jit.trace(model, example, check_trace=False)  # the encoder's fast path differs run to run
        expected, got = model(example), traced(example)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-3, atol=1e-4)
    traced.save(str(target / "model.pt"))


def write_onnx(network: str, target: Path) -> None:
    """The TorchScript-based exporter (``dynamo=False``): the dynamo one needs onnxscript."""
    import torch

    model = torch_network(network)
    example = torch.from_numpy(request(network))
    torch.backends.mha.set_fastpath_enabled(False)  # plain ops, which the exporter knows
    try:
        torch.onnx.export(model, (example,), str(target / "model.onnx"), dynamo=False, input_names=["input"],
                          output_names=["output"], dynamic_axes={"input": {0: "N"}, "output": {0: "N"}},
                          opset_version=17)
    finally:
        torch.backends.mha.set_fastpath_enabled(True)


# ---------------------------------------------------------------------------------- Keras


def _keras_resnet18():
    import keras
    from keras import layers

    def conv_bn(x, filters: int, kernel: int, stride: int, relu: bool = True):
        x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization(epsilon=1e-5)(x)
        return layers.ReLU()(x) if relu else x

    inputs = keras.Input(shape=IMAGE, name="input", dtype="float32")
    x = layers.Permute((2, 3, 1))(inputs)  # NCHW in, as the PyTorch and ONNX forms take it
    x = conv_bn(x, 64, 7, 2)
    x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
    for stage, filters in enumerate((64, 128, 256, 512)):
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            shortcut = x
            y = conv_bn(x, filters, 3, stride)
            y = conv_bn(y, filters, 3, 1, relu=False)
            if stride != 1 or shortcut.shape[-1] != filters:
                shortcut = conv_bn(x, filters, 1, stride, relu=False)
            x = layers.ReLU()(layers.Add()([y, shortcut]))
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(1000, name="output")(x), name="resnet18")


def _keras_encoder():
    import keras
    from keras import layers

    class AddPosition(layers.Layer):
        """A learned position embedding added to every sequence."""

        def build(self, input_shape):
            self.position = self.add_weight(shape=(1, TOKENS, HIDDEN), initializer=keras.initializers.RandomNormal(stddev=0.02))

        def call(self, x):
            return x + self.position

    inputs = keras.Input(shape=(TOKENS,), name="input", dtype="int64")
    x = AddPosition()(layers.Embedding(VOCABULARY, HIDDEN)(inputs))
    for _ in range(LAYERS):
        attended = layers.MultiHeadAttention(HEADS, HIDDEN // HEADS)(x, x)
        x = layers.LayerNormalization(epsilon=1e-5)(layers.Add()([x, attended]))
        fed = layers.Dense(HIDDEN)(layers.Dense(FEED_FORWARD, activation="gelu")(x))
        x = layers.LayerNormalization(epsilon=1e-5)(layers.Add()([x, fed]))
    first = layers.Lambda(lambda hidden: hidden[:, 0])(x)
    return keras.Model(inputs, layers.Dense(CLASSES, name="output")(first), name="encoder")


def write_savedmodel(network: str, target: Path) -> None:
    """``<target>/1/``: a versioned SavedModel, as TensorFlow Serving lays it out."""
    import keras

    keras.utils.set_random_seed(0)
    model = _keras_resnet18() if network == "resnet18" else _keras_encoder()
    model.export(str(target / "1"), verbose=False)


WRITERS = {"pytorch": write_torchscript, "onnx": write_onnx, "tensorflow": write_savedmodel}


def build(root: Path, networks: tuple[str, ...] = NETWORKS, frameworks: tuple[str, ...] = FRAMEWORKS) -> list[str]:
    made = []
    for network in networks:
        for framework in frameworks:
            name = f"{network}-{framework}"
            WRITERS[framework](network, model_dir(root, name))
            made.append(name)
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--only", default=",".join(NETWORKS), help="comma-separated networks")
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    args = parser.parse_args()
    made = build(args.out, tuple(args.only.split(",")), tuple(args.frameworks.split(",")))
    print("\n".join(made))


if __name__ == "__main__":
    main()
