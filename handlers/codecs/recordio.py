"""``application/x-recordio-protobuf``: SageMaker's RecordIO-framed protobuf ``Record``, in and out.

The format of the built-in algorithms and of the SageMaker Python SDK's ``RecordSerializer``
(``sagemaker.amazon.common``): each record is a frame (magic ``0xCED7230A``, length, the bytes,
zero padding to 4) holding one ``aialgs.data.Record``, whose ``features["values"]`` is a tensor
of float32, float64 or int32 ``values`` — dense, or sparse with ``keys`` (column indices) and
``shape`` (the row's width). A request decodes to a 2-D array of rows, or to a SciPy CSR matrix
when any record is sparse. A prediction encodes as one record per row, its values under
``label["score"]`` as float32 (named arrays: one label per name), as the built-in algorithms
answer.

The schema is ours, built here as a descriptor in a private pool (no generated code, no protoc,
and no clash with a ``record_pb2`` that user code may import): the field numbers are what makes
it the same wire format.
"""

import struct
from functools import cache
from typing import Any

import numpy as np

from handlers.codecs.media import RECORDIO
from handlers.errors import BadInput, NotAcceptable

MAGIC = 0xCED7230A
FRAME = struct.Struct("<II")
TENSORS = {"float32_tensor": np.float32, "float64_tensor": np.float64, "int32_tensor": np.int32}


@cache
def record_class() -> Any:
    """The ``Record`` message class (protobuf imported on first use: the front never pays for it)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="model_server/record.proto", package="aialgs.data", syntax="proto2")
    for name, kind in (("Float32Tensor", F.TYPE_FLOAT), ("Float64Tensor", F.TYPE_DOUBLE), ("Int32Tensor", F.TYPE_INT32)):
        tensor = file.message_type.add(name=name)
        for number, (field, field_kind) in enumerate((("values", kind), ("keys", F.TYPE_UINT64), ("shape", F.TYPE_UINT64)), 1):
            tensor.field.add(name=field, number=number, label=F.LABEL_REPEATED, type=field_kind).options.packed = True
    blob = file.message_type.add(name="Bytes")
    blob.field.add(name="value", number=1, label=F.LABEL_REPEATED, type=F.TYPE_BYTES)
    blob.field.add(name="content_type", number=2, label=F.LABEL_OPTIONAL, type=F.TYPE_STRING)
    value = file.message_type.add(name="Value")
    value.oneof_decl.add(name="value")
    for name, number, kind in (("float32_tensor", 2, "Float32Tensor"), ("float64_tensor", 3, "Float64Tensor"),
                               ("int32_tensor", 7, "Int32Tensor"), ("bytes", 9, "Bytes")):
        value.field.add(name=name, number=number, label=F.LABEL_OPTIONAL, type=F.TYPE_MESSAGE,
                        type_name=f".aialgs.data.{kind}", oneof_index=0)
    record = file.message_type.add(name="Record")
    for number, name in ((1, "features"), (2, "label")):
        entry = record.nested_type.add(name=f"{name.capitalize()}Entry")
        entry.options.map_entry = True
        entry.field.add(name="key", number=1, label=F.LABEL_OPTIONAL, type=F.TYPE_STRING)
        entry.field.add(name="value", number=2, label=F.LABEL_OPTIONAL, type=F.TYPE_MESSAGE, type_name=".aialgs.data.Value")
        record.field.add(name=name, number=number, label=F.LABEL_REPEATED, type=F.TYPE_MESSAGE,
                         type_name=f".aialgs.data.Record.{name.capitalize()}Entry")
    for number, name in ((3, "uid"), (4, "metadata"), (5, "configuration")):
        record.field.add(name=name, number=number, label=F.LABEL_OPTIONAL, type=F.TYPE_STRING)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("aialgs.data.Record"))


def frames(body: bytes) -> list[bytes]:
    """The payloads of a RecordIO body; 400 on a bad magic number, a multi-part record or a short frame."""
    payloads, offset = [], 0
    while offset < len(body):
        if len(body) - offset < FRAME.size:
            raise BadInput(f"RecordIO body ends inside a frame header at byte {offset}")
        magic, word = FRAME.unpack_from(body, offset)
        if magic != MAGIC:
            raise BadInput(f"RecordIO frame at byte {offset} does not start with the magic number 0xCED7230A")
        if word >> 29:
            raise BadInput(f"RecordIO frame at byte {offset} is part of a multi-part record, which is not supported")
        start = offset + FRAME.size
        payloads.append(body[start: start + word])
        if len(payloads[-1]) != word:
            raise BadInput(f"RecordIO frame at byte {offset} announces {word} bytes; the body ends first")
        offset = start + ((word + 3) & ~3)
    return payloads


def _row(payload: bytes, number: int) -> tuple[np.ndarray, np.ndarray | None, int | None]:
    """(values, keys or None when dense, width or None) of one record's ``features["values"]``."""
    from google.protobuf.message import DecodeError

    record = record_class()()
    try:
        record.ParseFromString(payload)
    except DecodeError as err:
        raise BadInput(f"RecordIO record {number} is not a protobuf Record: {err}") from None
    if "values" not in record.features:
        raise BadInput(f"RecordIO record {number} has no features[\"values\"] tensor")
    value = record.features["values"]
    kind = value.WhichOneof("value")
    if kind not in TENSORS:
        raise BadInput(f"RecordIO record {number}: features[\"values\"] is {kind or 'empty'}; expected a float32, float64 or int32 tensor")
    tensor = getattr(value, kind)
    values = np.asarray(tensor.values, TENSORS[kind])
    if not tensor.keys:
        return values, None, None
    if len(tensor.keys) != len(values):
        raise BadInput(f"RecordIO record {number} has {len(tensor.keys)} keys for {len(values)} values")
    keys = np.asarray(tensor.keys, np.int64)
    width = int(tensor.shape[0]) if tensor.shape else int(keys.max()) + 1
    if keys.max() >= width:
        raise BadInput(f"RecordIO record {number} has key {int(keys.max())} outside its shape [{width}]")
    return values, keys, width


def decode(body: bytes) -> Any:
    """A RecordIO-protobuf body as a 2-D array (dense records) or a CSR matrix (any sparse one)."""
    rows = [_row(payload, number) for number, payload in enumerate(frames(body), start=1)]
    if not rows:
        raise BadInput("RecordIO body holds no records")
    dtype = np.result_type(*(values.dtype for values, _, _ in rows))
    if all(keys is None for _, keys, _ in rows):
        if len({len(values) for values, _, _ in rows}) > 1:
            raise BadInput("RecordIO records have different lengths; dense rows must all be as long")
        return np.stack([values for values, _, _ in rows]).astype(dtype, copy=False)
    import scipy.sparse

    width = max(len(values) if width is None else width for values, _, width in rows)
    indices = [keys if keys is not None else np.arange(len(values)) for values, keys, _ in rows]
    indptr = np.cumsum([0] + [len(values) for values, _, _ in rows])
    return scipy.sparse.csr_matrix(
        (np.concatenate([values for values, _, _ in rows]).astype(dtype), np.concatenate(indices), indptr),
        shape=(len(rows), width),
    )


def _frame(payload: bytes) -> bytes:
    return FRAME.pack(MAGIC, len(payload)) + payload + b"\0" * (-len(payload) % 4)


def encode(prediction: Any) -> bytes:
    """One record per row, the row's values as float32 under ``label["score"]`` (for named
    arrays, under each name)."""
    named = prediction if isinstance(prediction, dict) else {"score": prediction}
    columns = {}
    for name, value in named.items():
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise NotAcceptable(f"a prediction of {array.dtype} values cannot be written as {RECORDIO}")
        columns[name] = array.reshape(len(array), -1) if array.ndim else array.reshape(1, 1)
    counts = {len(array) for array in columns.values()}
    if len(counts) != 1:
        raise NotAcceptable(f"named outputs with different numbers of rows cannot be written as {RECORDIO}")
    record = record_class()()
    out = []
    for index in range(counts.pop()):
        record.Clear()
        for name, array in columns.items():
            record.label[name].float32_tensor.values.extend(array[index].astype(np.float32).tolist())
        out.append(_frame(record.SerializeToString()))
    return b"".join(out)
