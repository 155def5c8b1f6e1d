"""The XGBoost container's request decoders, giving ``xgboost.DMatrix``, over ``handlers.codecs``.

``decode(obj, content_type)`` takes CSV, libsvm (``text/libsvm``, ``text/x-libsvm``) and
RecordIO-protobuf, as the container's does, and raises ``UnsupportedFormatError`` (a 415) for
anything else. CSV fields left empty are missing values; the delimiter is sniffed from the
first line, as there. libsvm indices are zero-based, as the container's ``xgb.DMatrix(file)``
reads them, unless the Content-Type says ``indexing_mode=1`` (one-based) or ``-1`` (detect).
"""

import csv
import io
import json
from typing import Any

import numpy as np
import xgboost as xgb

from handlers.codecs import libsvm, media, recordio
from handlers.codecs.decode import as_rows
from handlers.codecs.decode import decode as decode_body
from handlers.errors import BadInput
from sagemaker_containers.beta.framework.errors import UnsupportedFormatError
from sagemaker_xgboost_container.constants import xgb_content_types


def _text(data: Any) -> str:
    return data.decode("utf-8") if isinstance(data, (bytes, bytearray, memoryview)) else str(data)


def csv_to_dmatrix(input: Any, dtype: Any = None) -> xgb.DMatrix:
    text = _text(input).strip("\n")
    try:
        delimiter = csv.Sniffer().sniff(text.split("\n", 1)[0][:512]).delimiter
    except csv.Error:
        delimiter = ","
    if delimiter.isalnum() or delimiter in ".-+":
        delimiter = ","
    try:
        rows = np.genfromtxt(io.StringIO(text), delimiter=delimiter, dtype=dtype or np.float64, ndmin=2)
    except ValueError as err:
        raise BadInput(f"CSV body is not a table of numbers: {err}") from None
    return xgb.DMatrix(rows)


def libsvm_to_dmatrix(string_like: Any, content_type: str = media.LIBSVM) -> xgb.DMatrix:
    """The body read as the container's ``xgb.DMatrix(file)`` reads it: indices zero-based unless
    ``content_type`` carries XGBoost's ``indexing_mode`` (``text/libsvm; indexing_mode=1``)."""
    return xgb.DMatrix(libsvm.decode(_text(string_like).encode(), content_type))


def recordio_protobuf_to_dmatrix(string_like: Any) -> xgb.DMatrix:
    return xgb.DMatrix(recordio.decode(bytes(string_like)))


def json_to_dmatrix(string_like: Any) -> xgb.DMatrix:
    return xgb.DMatrix(as_rows(decode_body(_text(string_like).encode(), media.JSON), None))


def json_to_jsonlines(json_data: Any) -> bytes:
    """A JSON object of one list (``{"predictions": [...]}``) as JSON Lines, one entry a line."""
    answer = json_data if isinstance(json_data, dict) else json.loads(json_data)
    if len(answer) != 1:
        raise ValueError("JSON response is not compatible for conversion to jsonlines.")
    return b"".join(json.dumps(entry).encode() + b"\n" for value in answer.values() for entry in value)


_dmatrix_decoders_map = {
    media.CSV: csv_to_dmatrix,
    xgb_content_types.LIBSVM: libsvm_to_dmatrix,
    xgb_content_types.X_LIBSVM: libsvm_to_dmatrix,
    xgb_content_types.X_RECORDIO_PROTOBUF: recordio_protobuf_to_dmatrix,
}


def decode(obj: Any, content_type: str) -> xgb.DMatrix:
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if kind not in _dmatrix_decoders_map:
        raise UnsupportedFormatError(content_type)
    if kind in (xgb_content_types.LIBSVM, xgb_content_types.X_LIBSVM):
        return libsvm_to_dmatrix(obj, content_type)
    return _dmatrix_decoders_map[kind](obj)
