"""Check a request against botocore's own service model, as the service does before acting.

Every constraint the model states (required members, types, enums, patterns, lengths, ranges) is
checked; the message has the service's form, ``N validation error(s) detected: Value X at 'path'
failed to satisfy constraint: ...``, so a script that parses it on AWS parses it here.
"""

import re
from functools import cache, lru_cache
from typing import Any

import botocore.session
from botocore.model import ServiceModel, Shape

from local.service_errors import validation


@cache
def service_model(name: str) -> ServiceModel:
    return botocore.session.get_session().get_service_model(name)


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


Problem = tuple[str, Any, str]  # (path, value, why)


def _problems(value: Any, shape: Shape, path: str, out: list[Problem]) -> None:
    kind = shape.type_name
    meta = shape.metadata
    if kind == "structure":
        if not isinstance(value, dict):
            out.append((path, value, "Member must be a structure"))
            return
        for name in shape.required_members:
            if value.get(name) is None:
                out.append((f"{path}.{_camel(name)}".lstrip("."), None, "Member must not be null"))
        for name, item in value.items():
            member = shape.members.get(name)
            if member is None:
                out.append((f"{path}.{_camel(name)}".lstrip("."), item, "Member is not known"))
            elif item is not None:
                _problems(item, member, f"{path}.{_camel(name)}".lstrip("."), out)
        return
    if kind == "list":
        if not isinstance(value, list):
            out.append((path, value, "Member must be a list"))
            return
        _length(value, meta, path, out, "length")
        for index, item in enumerate(value, 1):
            _problems(item, shape.member, f"{path}.{index}.member", out)
        return
    if kind == "map":
        if not isinstance(value, dict):
            out.append((path, value, "Member must be a map"))
            return
        _length(value, meta, path, out, "length")
        for key, item in value.items():
            _problems(key, shape.key, f"{path}.key", out)
            _problems(item, shape.value, f"{path}.value", out)
        return
    if kind == "string":
        if not isinstance(value, str):
            out.append((path, value, "Member must be a string"))
            return
        _length(value, meta, path, out, "length")
        if shape.enum and value not in shape.enum:
            out.append((path, value, f"Member must satisfy enum value set: [{', '.join(shape.enum)}]"))
        pattern = meta.get("pattern")
        if pattern and not _matches(pattern, value):
            out.append((path, value, f"Member must satisfy regular expression pattern: {pattern}"))
        return
    if kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            out.append((path, value, "Member must be an integer"))
            return
        _length(value, meta, path, out, "value")
        return
    if kind in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            out.append((path, value, "Member must be a number"))
            return
        _length(value, meta, path, out, "value")
        return
    if kind == "boolean" and not isinstance(value, bool):
        out.append((path, value, "Member must be a boolean"))


def _length(value: Any, meta: dict[str, Any], path: str, out: list[Problem], what: str) -> None:
    size = len(value) if what == "length" else value
    if "min" in meta and size < meta["min"]:
        out.append((path, value, f"Member must have {what} greater than or equal to {meta['min']}"))
    if "max" in meta and size > meta["max"]:
        out.append((path, value, f"Member must have {what} less than or equal to {meta['max']}"))


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern, re.DOTALL)
    except re.error:
        return None  # a Java-only construct: leave that constraint to the operation's own checks


def _matches(pattern: str, value: str) -> bool:
    compiled = _compiled(pattern)
    return compiled is None or compiled.fullmatch(value) is not None  # the service matches whole values


def check(service: str, operation: str, params: dict[str, Any]) -> None:
    """Raise the service's ValidationException when ``params`` break the operation's input shape."""
    shape = service_model(service).operation_model(operation).input_shape
    problems: list[Problem] = []
    _problems(params, shape, "", problems)
    if problems:
        shown = "; ".join(
            f"Value {'null' if value is None else repr(value)[:80]} at '{path}' failed to satisfy constraint: {why}"
            for path, value, why in problems[:10]
        )
        count = len(problems)
        raise validation(f"{count} validation error{'s' if count > 1 else ''} detected: {shown}")
