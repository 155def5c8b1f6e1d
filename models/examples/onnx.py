"""ONNX examples: an scikit-learn classifier converted by skl2onnx (``onnx-classifier``: outputs
``label`` and ``probabilities``), and a two-input graph written with ``onnx.helper``
(``onnx-two-inputs``: ``out = a @ W + b``)."""

from pathlib import Path

import numpy as np

from models import data
from models.layout import model_dir


def _classifier(root: Path) -> str:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    X, y = data.classification(seed=7)
    classifier = LogisticRegression(max_iter=500).fit(X, y)
    onnx_model = to_onnx(
        classifier,
        initial_types=[("input", FloatTensorType([None, X.shape[1]]))],
        # Plain tensors rather than a list of {class: probability} maps.
        options={id(classifier): {"zipmap": False}},
        final_types=None,
        target_opset=17,
    )
    # Friendlier output names than skl2onnx's output_label / output_probability.
    renames = {"output_label": "label", "output_probability": "probabilities"}
    for node in onnx_model.graph.node:
        node.output[:] = [renames.get(name, name) for name in node.output]
    for output in onnx_model.graph.output:
        output.name = renames.get(output.name, output.name)
    (model_dir(root, "onnx-classifier") / "model.onnx").write_bytes(onnx_model.SerializeToString())
    return "onnx-classifier"


def _two_inputs(root: Path) -> str:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.random.default_rng(8).normal(size=(4, 3)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["a", "W"], ["product"]),
            helper.make_node("Add", ["product", "b"], ["out"]),
        ],
        "two_inputs",
        inputs=[
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 4]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 3]),
        ],
        outputs=[helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 3])],
        initializer=[numpy_helper.from_array(weights, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, str(model_dir(root, "onnx-two-inputs") / "model.onnx"))
    return "onnx-two-inputs"


def build(root: Path) -> list[str]:
    return [_classifier(root), _two_inputs(root)]
