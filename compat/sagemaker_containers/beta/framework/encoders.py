"""``decode`` / ``encode`` and the per-type converters of the toolkit, over ``handlers.codecs``.

Like the toolkit: ``decode`` gives a NumPy array for JSON, CSV and NPY and raises
``UnsupportedFormatError`` for anything else; ``encode`` gives text (``str``) for JSON and CSV and
bytes for NPY. Unlike it: CSV always decodes to 2-D rows, and JSON objects unwrap
``{"instances": ...}`` as everywhere else in this server.
"""

from typing import Any

import numpy as np

from handlers.codecs import media
from handlers.codecs.decode import decode as decode_body
from handlers.codecs.encode import encode as encode_body
from sagemaker_containers.beta.framework.errors import UnsupportedFormatError

_TYPES = (media.JSON, media.CSV, media.NPY)


def _as_bytes(data: Any) -> bytes:
    return data.encode() if isinstance(data, str) else bytes(data)


def json_to_numpy(string_like: Any, dtype: Any = None) -> np.ndarray:
    return np.asarray(decode_body(_as_bytes(string_like), media.JSON), dtype=dtype)


def csv_to_numpy(string_like: Any, dtype: Any = None) -> np.ndarray:
    return np.asarray(decode_body(_as_bytes(string_like), media.CSV), dtype=dtype)


def npy_to_numpy(npy_array: Any) -> np.ndarray:
    return np.asarray(decode_body(_as_bytes(npy_array), media.NPY))


def array_to_json(array_like: Any) -> str:
    return encode_body(array_like, media.JSON).decode()


def array_to_csv(array_like: Any) -> str:
    return encode_body(array_like, media.CSV).decode()


def array_to_npy(array_like: Any) -> bytes:
    return encode_body(array_like, media.NPY)


_DECODERS = {media.JSON: json_to_numpy, media.CSV: csv_to_numpy, media.NPY: npy_to_numpy}
_ENCODERS = {media.JSON: array_to_json, media.CSV: array_to_csv, media.NPY: array_to_npy}


def decode(obj: Any, content_type: str) -> np.ndarray:
    """``obj`` (str or bytes) of ``content_type`` as a NumPy array."""
    kind = media.media_type(content_type)
    if kind not in _DECODERS:
        raise UnsupportedFormatError(content_type)
    return _DECODERS[kind](obj)


def encode(array_like: Any, content_type: str) -> Any:
    """``array_like`` written as ``content_type`` (JSON, CSV: str; NPY: bytes)."""
    kind = media.media_type(content_type)
    if kind not in _ENCODERS:
        raise UnsupportedFormatError(content_type)
    return _ENCODERS[kind](array_like)
