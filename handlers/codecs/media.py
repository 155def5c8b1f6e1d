"""Media types: the names of the content types, their aliases, and Accept negotiation.

The same types the AWS framework toolkits speak (CONTRACT.md §5–6), plus libsvm and RecordIO
(the AWS XGBoost and built-in algorithm types). Media-type parameters (``; charset=utf-8``) are
ignored for matching. No NumPy here: the front checks SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT with
this module, and tests name the types from it.
"""

import functools

from handlers.errors import NotAcceptable

JSON = "application/json"
CSV = "text/csv"
NPY = "application/x-npy"
NPZ = "application/x-npz"
JSONLINES = "application/jsonlines"
LIBSVM = "text/libsvm"  # handlers.codecs.libsvm
RECORDIO = "application/x-recordio-protobuf"  # handlers.codecs.recordio

_ALIASES = {
    "application/x-jsonlines": JSONLINES,
    "application/jsonl": JSONLINES,
    "application/x-ndjson": JSONLINES,
    "text/json": JSON,
    "text/x-libsvm": LIBSVM,
    "application/x-libsvm": LIBSVM,
}

DECODABLE = (JSON, CSV, NPY, NPZ, JSONLINES, LIBSVM, RECORDIO)
ENCODABLE = (JSON, CSV, NPY, JSONLINES, RECORDIO)


def media_type(content_type: str | None) -> str:
    """The bare, lower-case media type of a Content-Type value, aliases folded."""
    bare = (content_type or "").split(";", 1)[0].strip().lower()
    return _ALIASES.get(bare, bare)


def _quality(item: str) -> float | None:
    """The q of one Accept element (1 when absent), or None when it is not a number in 0..1."""
    for parameter in item.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value.strip())
            except ValueError:
                return None
            return q if 0.0 <= q <= 1.0 else None
    return 1.0


def _specificity(media_range: str, candidate: str) -> int | None:
    """How specifically ``media_range`` names ``candidate``: 2 exact, 1 ``type/*``, 0 ``*/*``,
    None when it does not match."""
    if media_range == candidate:
        return 2
    if media_range == "*/*":
        return 0
    if media_range.endswith("/*") and candidate.startswith(media_range[:-1]):
        return 1
    return None


@functools.lru_cache(maxsize=512)  # clients send few distinct Accept headers; each is parsed once
def negotiate(accept: str | None, default: str, offered: tuple[str, ...] = ENCODABLE) -> str:
    """Pick the response media type from an Accept header, as RFC 9110 §12.5.1 says.

    Each offered type takes the q of the most specific range that matches it, so
    ``application/json;q=0, */*;q=0.1`` rules JSON out (q=0 means "not acceptable"). The best q
    wins; among equals, the type named more specifically, then the range listed first, then
    ``default`` (SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT): ``*/*`` alone, or no header, is the default.
    """
    if default not in offered:
        default = offered[0]
    if not accept or not accept.strip():
        return default
    ranges = []
    for position, item in enumerate(accept.split(",")):
        kind = media_type(item)
        q = _quality(item)
        if kind and q is not None:
            ranges.append((kind, q, position))
    best = None
    for order, candidate in enumerate(offered):
        matches = [(spec, q, position) for kind, q, position in ranges
                   if (spec := _specificity(kind, candidate)) is not None]
        if not matches:
            continue
        top = max(spec for spec, _, _ in matches)
        q = min(q for spec, q, _ in matches if spec == top)
        position = min(position for spec, _, position in matches if spec == top)
        if q > 0:
            rank = (-q, -top, position, candidate != default, order)
            best = min(best, (rank, candidate)) if best else (rank, candidate)
    if best is None:
        raise NotAcceptable(f"cannot answer as {accept.strip()!r}; available: {', '.join(offered)}")
    return best[1]
