"""What users' hooks return, checked where it becomes an Answer: a wrong type fails that one
request with a 500 naming it, and every Answer that leaves ``answer_all`` is bytes, a str
content type and str headers (what the worker serialises without another look)."""

import textwrap
from pathlib import Path

import pytest

from handlers import user_code
from handlers.base import Framework
from handlers.describe import describe
from handlers.serving import Answer, ServedModel

# Each request says in its Accept header what the hooks should get wrong ("ok": nothing).
HOOKS = """
def input_fn(body, content_type, context):
    return body

def predict_fn(data, model, context):
    return data

def output_fn(prediction, accept, context):
    if accept == "x/bytes-type":
        return b"ok", b"text/plain"
    if accept == "x/int-type":
        return b"ok", 5
    if accept == "x/bytes-header":
        context.set_response_header(0, "X-B", b"bytes")
    if accept == "x/object-header":
        context.set_response_header(0, "X-B", object())
    if accept == "x/int-name":
        context.set_response_header(0, 0, "v")
    if accept == "x/bytes-name-in-dict":
        context.response_headers[b"x-b"] = "v"
    context.set_response_header(0, "X-Ok", "fine")
    if accept == "x/headers-replaced":
        context.response_headers = [("x-b", "v")]
    return "ok", "text/plain"
"""

TRANSFORM = """
def transform_fn(model, body, content_type, accept):
    return b"ok", b"text/plain"
"""

# Nothing of a framework is reached when the user's hooks do every step.
STAND_IN = Framework(name="stand-in", find=lambda model_dir: None, load=lambda artifact: None,
                     predict=lambda model, data, context: data)


def served(tmp_path: Path, code: str) -> ServedModel:
    """A model served by real user code, imported as the worker imports it."""
    model_dir = tmp_path / "model"
    (model_dir / "code").mkdir(parents=True)
    (model_dir / "code" / "inference.py").write_text(textwrap.dedent(code))
    module = user_code.import_user_module(model_dir, "inference.py", None)
    return ServedModel(None, model_dir, "application/json", STAND_IN, user_code.find_hooks(module))


def request(accept: str) -> tuple[bytes, dict[str, str]]:
    return b"1,2", {"content-type": "text/csv", "accept": accept}


@pytest.mark.parametrize("accept, message", [
    ("x/bytes-type", "output_fn returned a content type of type bytes; expected str"),
    ("x/int-type", "output_fn returned a content type of type int; expected str"),
    ("x/bytes-header", "TypeError: set_response_header got response header 'X-B' with a value of type bytes; expected str"),
    ("x/object-header", "TypeError: set_response_header got response header 'X-B' with a value of type object; expected str"),
    ("x/int-name", "TypeError: set_response_header got a response header name of type int; expected str"),
    ("x/bytes-name-in-dict", "user code set a response header name of type bytes; expected str"),
    ("x/headers-replaced", "the context's response headers are a list; expected a dict"),
])
def test_a_wrong_type_fails_its_own_request_alone(tmp_path, accept, message):
    model = served(tmp_path, HOOKS)
    bad, good = model.answer_all([request(accept), request("ok")])
    assert isinstance(bad, BaseException)
    assert describe(bad).body() == {"code": 500, "type": "InternalServerException", "message": message}
    assert isinstance(good, Answer)
    assert (good.body, good.content_type, good.headers) == (b"ok", "text/plain", {"x-ok": "fine"})


def test_transform_fn_with_a_bytes_content_type_is_refused(tmp_path):
    (answer,) = served(tmp_path, TRANSFORM).answer_all([request("ok")])
    assert describe(answer).message == "transform_fn returned a content type of type bytes; expected str"


def test_every_answer_carries_the_types_the_worker_sends(tmp_path):
    answer = served(tmp_path, HOOKS).answer(*request("ok"))
    assert type(answer.body) is bytes and type(answer.content_type) is str
    assert all(type(name) is str and type(value) is str for name, value in answer.headers.items())
