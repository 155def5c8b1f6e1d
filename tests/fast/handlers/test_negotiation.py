"""Accept negotiation as RFC 9110 §12.5.1 says: q=0 is "not acceptable", the most specific range
that matches a type gives its quality, wildcards yield to named types."""

import pytest

from handlers.codecs import media
from handlers.errors import NotAcceptable

JSON, CSV, NPY, JSONL = media.JSON, media.CSV, media.NPY, media.JSONLINES


@pytest.mark.parametrize("accept, default, expected", [
    (None, JSON, JSON),
    ("", CSV, CSV),
    ("*/*", JSON, JSON),
    ("*/*", CSV, CSV),
    ("text/csv", JSON, CSV),
    ("text/csv; charset=utf-8", JSON, CSV),
    ("text/*", JSON, CSV),
    ("application/json, text/csv", CSV, JSON),  # equal q: the one listed first
    ("text/csv, */*", JSON, CSV),  # a named type beats the wildcard at the same q
    ("text/csv;q=0.5, application/json", CSV, JSON),
    ("application/json;q=0, */*;q=0.1", JSON, CSV),  # JSON is ruled out; the next offered type
    ("application/json;q=0, */*;q=0.1", CSV, CSV),
    ("text/*;q=0.5, text/csv;q=0", JSON, None),  # csv is the only text type, and it is refused
    ("application/*;q=0.2, application/x-npy;q=0.9", JSON, NPY),
    ("application/jsonlines;q=0.8, application/*;q=0.9", JSON, JSON),
    # RFC 9110's example shape: a more specific range wins over a broader one for its type.
    ("text/*;q=0.3, text/csv;q=0.7, */*;q=0.5", JSON, CSV),
    ("text/*;q=0.3, application/json;q=0.2, */*;q=0.5", JSON, NPY),
    ("application/json;q=bogus", JSON, None),  # a malformed q makes its element unusable
    ("application/json;q=1.5, text/csv", JSON, CSV),
    ("image/png", JSON, None),
])
def test_negotiate(accept, default, expected):
    if expected is None:
        with pytest.raises(NotAcceptable):
            media.negotiate(accept, default)
    else:
        assert media.negotiate(accept, default) == expected


def test_negotiate_among_what_a_handler_offers():
    offered = (JSON, JSONL)
    assert media.negotiate("text/csv;q=0.9, application/jsonlines;q=0.1", JSON, offered) == JSONL
    assert media.negotiate("*/*", CSV, offered) == JSON  # the default is not offered: the first offered
    with pytest.raises(NotAcceptable, match="available: application/json, application/jsonlines"):
        media.negotiate("text/csv", JSON, offered)
