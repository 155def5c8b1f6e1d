"""The cap on what a request body may decode to, in bytes: one value for the whole process.

A body may not make the server allocate more than it sent, give or take a stated factor: the
decoders (``handlers.codecs.decode``, ``handlers.codecs.npy``) check the sizes a body declares
against this cap before anything of that size is allocated; over it is a 413. A worker sets it
once at start from ``WorkerConfig.max_decoded_bytes`` (MODEL_SERVER_MAX_DECODED_FACTOR times the
payload limit, computed by the front). It is the process's and not a request's because user code
decodes too, through the AWS toolkits' ``decoder.decode(body, content_type)``, which carries no
context.
"""

from handlers.errors import ServingError

# A process no front configured (a test, a script): the default factor (4) times the default
# payload limit (6 MiB), as server.config.Settings has them.
DEFAULT_DECODED_LIMIT = 4 * 6 * 2**20

_limit = DEFAULT_DECODED_LIMIT


def set_decoded_limit(limit: int) -> None:
    """Set this process's cap on decoded input, in bytes (a worker does it once at start)."""
    global _limit
    _limit = limit


def decoded_limit() -> int:
    return _limit


def claim(need: int, budget: int, what: str) -> None:
    """413 when ``need`` bytes would pass ``budget`` (the cap, or what an archive has left of it)."""
    if need > budget:
        raise ServingError(
            f"{what} decodes to {need} bytes, over the {_limit}-byte cap on decoded input "
            "(MODEL_SERVER_MAX_DECODED_FACTOR times the payload limit)",
            413,
        )
