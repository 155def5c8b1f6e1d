"""The toolkit's error classes. The server answers them with their ``status_code``:
``UnsupportedFormatError`` 415, ``ClientError`` 400."""


class ClientError(Exception):
    """A request the model cannot serve."""

    status_code = 400


class UnsupportedFormatError(ClientError):
    """A content type the script does not handle."""

    status_code = 415

    def __init__(self, content_type: str, **kwargs: object):
        self.content_type = content_type
        super().__init__(f"Content type {content_type} is not supported by this framework.")
