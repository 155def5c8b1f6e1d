"""Tiny ONNX models encoded by hand (protobuf's wire format): the runtime set has ONNX Runtime
but not the ``onnx`` package, and a probe needs only one operator with its weights."""

from typing import Any

Array = Any  # a numpy array


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, value: int | str | bytes) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    data = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def onnx_model(op_type: str, input_shape: tuple[int, ...], initializers: list[tuple[str, Array]],
               output_shape: tuple[int, ...]) -> bytes:
    """An ONNX model ``Y = op_type(X, *initializers)`` on float32, with the weights as
    initializers (as models hold them) and no node attributes (``Gemm``: ``X @ W + B``; ``Conv``:
    kernel from W, stride 1, no padding). Encoded by hand: the runtime set has ONNX Runtime but not
    the ``onnx`` package."""

    def shape(dims: tuple[int, ...]) -> bytes:
        return b"".join(_field(1, _field(1, d)) for d in dims)

    def value_info(name: str, dims: tuple[int, ...]) -> bytes:
        return _field(1, name) + _field(2, _field(1, _field(1, 1) + _field(2, shape(dims))))

    def tensor(name: str, array: Array) -> bytes:
        return b"".join(_field(1, d) for d in array.shape) + _field(2, 1) + _field(8, name) + _field(9, array.astype("<f4").tobytes())

    names = ["X"] + [name for name, _ in initializers]
    node = b"".join(_field(1, name) for name in names) + _field(2, "Y") + _field(3, "op") + _field(4, op_type)
    graph = (_field(1, node) + _field(2, "probe") + b"".join(_field(5, tensor(n, a)) for n, a in initializers)
             + _field(11, value_info("X", input_shape)) + _field(12, value_info("Y", output_shape)))
    return _field(1, 8) + _field(2, "model-server") + _field(7, graph) + _field(8, _field(1, "") + _field(2, 17))


