"""``worker.Response``: what ``output_fn`` / ``transform_fn`` of toolkit scripts return.

The toolkit's was a Flask response; this server takes a hook's ``(body, content type)`` pair, so
``Response`` is that pair, with the Flask names scripts read (``response``, ``mimetype``,
``content_type``, ``status``, ``headers``, ``get_data``). The status and headers are kept for the
script but not sent: the server answers 200 with the body and its content type.
"""

from typing import Any

DEFAULT_MIMETYPE = "text/html"  # Flask's, when a script names none


class Response(tuple):  # type: ignore[type-arg]
    def __new__(cls, response: Any = None, status: int = 200, headers: Any = None, mimetype: str | None = None,
                content_type: str | None = None, direct_passthrough: bool = False) -> "Response":
        body = b"" if response is None else response
        if isinstance(body, (list, tuple)):  # Flask takes an iterable of chunks
            body = b"".join(part.encode() if isinstance(part, str) else bytes(part) for part in body)
        self = super().__new__(cls, (body, content_type or mimetype or DEFAULT_MIMETYPE))
        self.status_code = int(status)
        self.headers = dict(headers or {})
        return self

    @property
    def response(self) -> Any:
        return self[0]

    @property
    def content_type(self) -> str:
        return str(self[1])

    @property
    def mimetype(self) -> str:
        return self.content_type.split(";", 1)[0].strip()

    @property
    def status(self) -> str:
        return str(self.status_code)

    def get_data(self, as_text: bool = False) -> Any:
        body = self[0].encode() if isinstance(self[0], str) else bytes(self[0])
        return body.decode() if as_text else body

    @property
    def data(self) -> bytes:
        return bytes(self.get_data())
