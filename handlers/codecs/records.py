"""JSON and JSON Lines bodies as Python values, before any array is made (no NumPy here).

Every JSON decoder starts here: the shared codec (``handlers.codecs.decode``), TensorFlow's
REST shapes and Prophet's frames each read the value and then make of it what they need.
"""

from typing import Any

import orjson

from handlers.errors import BadInput


def json_value(body: bytes) -> Any:
    """The JSON value of a body; 400 naming the syntax error. Every JSON decoder starts here."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise BadInput(f"body is not valid JSON: {err}") from None



def jsonlines_records(body: bytes) -> list[Any]:
    """The JSON values of a JSON Lines body, blank lines skipped; 400 naming a bad record."""
    records = []
    for number, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(orjson.loads(line))
        except orjson.JSONDecodeError as err:
            raise BadInput(f"JSON Lines record {number} is not valid JSON: {err}") from None
    if not records:
        raise BadInput("JSON Lines body holds no records")
    return records

