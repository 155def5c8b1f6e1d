"""TF Serving's REST shapes, as the AWS TensorFlow container passes them to TF Serving.

Requests: ``{"instances": [...]}`` (row format, each instance a value or an object keyed by input
name), ``{"inputs": ...}`` (columnar, a value or an object keyed by input name), TF Serving's
``{"b64": "..."}`` binary values, and the body's ``"signature_name"``; a bare JSON array, JSON
Lines, CSV, NPY and NPZ are row-format batches (``decode`` -> ``Request``). Answers: row format
as ``{"predictions": [...]}`` (with several outputs, a list of per-instance objects), columnar as
``{"outputs": ...}`` (``Result`` -> ``encode``).
"""

import base64
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from handlers.base import default_encode
from handlers.codecs import media
from handlers.codecs.decode import decode as decode_body
from handlers.codecs.decode import rectangular
from handlers.codecs.encode import encode as encode_body
from handlers.codecs.records import json_value, jsonlines_records
from handlers.context import Context
from handlers.errors import BadInput, NotAcceptable

# ---------------------------------------------------------------------------------- decode


@dataclass
class Request:
    """A decoded request: ``columnar`` for ``{"inputs": ...}``, row format otherwise."""

    inputs: Any  # an array, or {input name: array}
    columnar: bool = False
    signature: str | None = None  # from the body's "signature_name"


def _unb64(value):
    """TF Serving's binary values: ``{"b64": "..."}`` becomes bytes, anywhere in the structure."""
    if isinstance(value, dict):
        if set(value) == {"b64"} and isinstance(value["b64"], str):
            try:
                return base64.b64decode(value["b64"], validate=True)
            except ValueError:
                raise BadInput("a \"b64\" value is not valid base64") from None
        return {key: _unb64(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_unb64(item) for item in value]
    return value


def _array(value, what: str) -> np.ndarray:
    return rectangular(value, what, binary=True)


def _columns(instances: list) -> dict:
    """Row format with named inputs: a list of objects becomes one array per input."""
    names = list(instances[0])
    if not names:
        raise BadInput("instances are empty objects")
    for number, instance in enumerate(instances):
        if not isinstance(instance, dict) or set(instance) != set(names):
            raise BadInput(
                f"instance {number} does not have the same input names as instance 0 ({', '.join(names)})"
            )
    return {name: _array([instance[name] for instance in instances], f"input {name!r}") for name in names}


def _decode_value(value, what: str):
    if isinstance(value, dict):
        if not value:
            raise BadInput(f"{what} is an empty object")
        return {str(name): _array(item, f"input {name!r}") for name, item in value.items()}
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return _columns(value)
    return _array(value, what)


def _decode_json(body: bytes) -> Request:
    value = json_value(body)
    if b'"b64"' in body:
        value = _unb64(value)
    if not isinstance(value, dict):
        if isinstance(value, list) and not value:
            raise BadInput("JSON body is an empty list")
        return Request(_decode_value(value, "JSON body"))
    signature = value.get("signature_name")
    if signature is not None and not isinstance(signature, str):
        raise BadInput("\"signature_name\" must be a string")
    if "instances" in value and "inputs" in value:
        raise BadInput("send either \"instances\" (row format) or \"inputs\" (columnar), not both")
    if "instances" in value:
        instances = value["instances"]
        if not isinstance(instances, list) or not instances:
            raise BadInput("\"instances\" must be a non-empty list")
        return Request(_decode_value(instances, "\"instances\""), signature=signature)
    if "inputs" in value:
        return Request(_decode_value(value["inputs"], "\"inputs\""), columnar=True, signature=signature)
    extra = [key for key in value if key != "signature_name"]
    if not extra:
        raise BadInput("JSON body holds no \"instances\" or \"inputs\"")
    # An object of arrays keyed by input name, as the shared JSON codec reads it.
    return Request(_decode_value({key: value[key] for key in extra}, "JSON body"), signature=signature)


def _decode_jsonlines(body: bytes) -> Request:
    instances = jsonlines_records(body)
    if b'"b64"' in body:
        instances = _unb64(instances)
    return Request(_decode_value(instances, "JSON Lines body"))


def decode(body: bytes, content_type: str | None, context: Context) -> Request:
    kind = media.media_type(content_type)
    if kind == media.JSON and body:
        return _decode_json(body)
    if kind == media.JSONLINES and body:
        return _decode_jsonlines(body)
    return Request(decode_body(body, content_type))



@dataclass
class Result:
    outputs: dict  # name -> np.ndarray
    names: list[str]
    columnar: bool



# ---------------------------------------------------------------------------------- encode


def _plain(array: np.ndarray):
    """What orjson can write: numbers stay an array; strings (TF's bytes) become text."""
    if array.dtype.kind in "OSU":
        return _texts(array.tolist())
    if array.dtype == np.float16 or array.dtype.kind == "c":
        return array.astype(np.float64 if array.dtype.kind != "c" else np.complex128).tolist()
    return np.ascontiguousarray(array)


def _texts(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, list):
        return [_texts(item) for item in value]
    return value


def _rows(result: Result) -> list:
    """Row format with several outputs: one object per instance, as TF Serving answers."""
    sizes = {result.outputs[name].shape[0] if result.outputs[name].ndim else None for name in result.names}
    if len(sizes) != 1 or None in sizes:
        raise BadInput("the outputs do not share a batch size; ask in columnar form ({\"inputs\": ...})")
    columns = {name: _plain(result.outputs[name]) for name in result.names}
    count: int = sizes.pop()  # type: ignore[assignment]  # None was ruled out above
    return [{name: columns[name][i] for name in result.names} for i in range(count)]


_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def encode(result, accept: str | None, context: Context) -> tuple[bytes, str]:
    if not isinstance(result, Result):  # a user's predict_fn returned something of its own
        return default_encode(result, accept, context)
    single = len(result.names) == 1
    offered = media.ENCODABLE if single else (media.JSON, media.JSONLINES)
    default = context.default_accept if context.default_accept in offered else media.JSON
    kind = media.negotiate(accept, default, offered)
    if kind not in offered:
        raise NotAcceptable(f"this model's answer cannot be written as {kind}; available: {', '.join(offered)}")
    if kind == media.JSON:
        if result.columnar:
            value = _plain(result.outputs[result.names[0]]) if single else {
                name: _plain(result.outputs[name]) for name in result.names
            }
            return orjson.dumps({"outputs": value}, option=_JSON_OPTIONS), kind
        value = _plain(result.outputs[result.names[0]]) if single else _rows(result)
        return orjson.dumps({"predictions": value}, option=_JSON_OPTIONS), kind
    if kind == media.JSONLINES:
        rows = _plain(result.outputs[result.names[0]]) if single else _rows(result)
        if isinstance(rows, np.ndarray) and rows.ndim == 0:
            rows = rows.reshape(1)
        return b"".join(orjson.dumps(row, option=_JSON_OPTIONS) + b"\n" for row in rows), kind
    return encode_body(result.outputs[result.names[0]], kind), kind


# Measured: a SavedModel or .keras file takes 1.05-1.1x its size on disk once loaded (a 150 MB
