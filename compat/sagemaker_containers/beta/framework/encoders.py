"""``decode`` / ``encode`` and the per-type converters of the toolkit, over ``handlers.codecs``.

Like the toolkit: ``decode`` gives a NumPy array for JSON, CSV and NPY and raises
``UnsupportedFormatError`` for anything else; ``encode`` gives text (``str``) for JSON and CSV and
bytes for NPY. Unlike it: CSV always decodes to 2-D rows, and JSON objects unwrap
``{"instances": ...}`` as everywhere else in this server.
"""

from typing import Any

import numpy as np

from handlers import codecs
from sagemaker_containers.beta.framework.errors import UnsupportedFormatError

_TYPES = (codecs.JSON, codecs.CSV, codecs.NPY)


def _as_bytes(data: Any) -> bytes:
    return data.encode() if isinstance(data, str) else bytes(data)


def json_to_numpy(string_like: Any, dtype: Any = None) -> np.ndarray:
    return np.asarray(codecs.decode(_as_bytes(string_like), codecs.JSON), dtype=dtype)


def csv_to_numpy(string_like: Any, dtype: Any = None) -> np.ndarray:
    return np.asarray(codecs.decode(_as_bytes(string_like), codecs.CSV), dtype=dtype)


def npy_to_numpy(npy_array: Any) -> np.ndarray:
    return np.asarray(codecs.decode(_as_bytes(npy_array), codecs.NPY))


def array_to_json(array_like: Any) -> str:
    return codecs.encode(array_like, codecs.JSON).decode()


def array_to_csv(array_like: Any) -> str:
    return codecs.encode(array_like, codecs.CSV).decode()


def array_to_npy(array_like: Any) -> bytes:
    return codecs.encode(array_like, codecs.NPY)


_DECODERS = {codecs.JSON: json_to_numpy, codecs.CSV: csv_to_numpy, codecs.NPY: npy_to_numpy}
_ENCODERS = {codecs.JSON: array_to_json, codecs.CSV: array_to_csv, codecs.NPY: array_to_npy}


def decode(obj: Any, content_type: str) -> np.ndarray:
    """``obj`` (str or bytes) of ``content_type`` as a NumPy array."""
    kind = codecs.media_type(content_type)
    if kind not in _DECODERS:
        raise UnsupportedFormatError(content_type)
    return _DECODERS[kind](obj)


def encode(array_like: Any, content_type: str) -> Any:
    """``array_like`` written as ``content_type`` (JSON, CSV: str; NPY: bytes)."""
    kind = codecs.media_type(content_type)
    if kind not in _ENCODERS:
        raise UnsupportedFormatError(content_type)
    return _ENCODERS[kind](array_like)
