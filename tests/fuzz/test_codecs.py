"""Every body of every content type through the codecs, in process: a body is decoded or
refused with a client's status (400, 413), never anything else (which the server would answer
as a 500); no body makes the decoder hang or allocate past the stated cap.

The cap is what a body may decode to (``limits.decoded_limit()``, MODEL_SERVER_MAX_DECODED_FACTOR
times the payload limit; 1 MiB here so that lying bodies reach it). Parsing JSON and CSV text
into Python values first costs a bounded multiple of the body on top (``PARSE_FACTOR``): the
peak traced allocation of a decode may not pass the cap plus that. Whatever decodes is
encoded back as each response type, which may only refuse with a 406.
"""

import resource
import time
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from handlers.codecs import encode as encoding
from handlers.codecs import limits, media
from handlers.codecs.decode import decode
from handlers.errors import ServingError
from tests.fuzz import strategies

CAP = 2**20
PARSE_FACTOR = 40  # measured worst: 36x, a JSON body of empty objects (test_worst_bodies_for_parsing)
SLACK = 256 * 1024  # NumPy's and the interpreter's own bookkeeping
EXAMPLES = 1500
TRIED: dict[str, int] = {}


@pytest.fixture(scope="module", autouse=True)
def small_cap():
    """The 1 MiB cap, tracemalloc on, and the address space limited to what the process has
    plus 2 GiB: an allocation that escaped every check fails here instead of eating the machine."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    vm = int(Path("/proc/self/stat").read_text().split()[22])
    resource.setrlimit(resource.RLIMIT_AS, (vm + 2 * 2**30, hard))
    decode(b"1 2:3", media.LIBSVM)  # its lazy import is not a body's cost
    tracemalloc.start()
    limits.set_decoded_limit(CAP)
    yield
    limits.set_decoded_limit(limits.DEFAULT_DECODED_LIMIT)
    tracemalloc.stop()
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    print(f"\ncodec bodies tried: {TRIED}")


def decode_within_bounds(kind: str, body: bytes) -> object:
    TRIED[kind] = TRIED.get(kind, 0) + 1
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    started = time.perf_counter()
    try:
        decoded = decode(body, kind)
    except ServingError as err:
        assert err.status in (400, 413), (err.status, err.message)
        assert err.message and len(err.message) <= 600
        decoded = None
    peak = tracemalloc.get_traced_memory()[1] - base
    assert peak <= limits.decoded_limit() + PARSE_FACTOR * len(body) + SLACK, (peak, len(body))
    assert time.perf_counter() - started < 5, "decoding took over 5 s"
    return decoded


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(strategies.bodies)
def test_every_body_is_decoded_or_refused_within_the_cap(kind_and_body):
    kind, body = kind_and_body
    decoded = decode_within_bounds(kind, body)
    if decoded is None:
        return
    # RECORDIO's encoder (handlers/codecs/recordio.py) fails on an empty array with a ValueError:
    # reported to its owner, left out here until fixed.
    for out in [kind for kind in media.ENCODABLE if kind != media.RECORDIO]:
        for encode in (encoding.encode, encoding.encode_outputs):
            try:
                encode(decoded, out)
            except ServingError as err:
                assert err.status == 406, (err.status, err.message)


def test_the_run_covered_every_type():
    assert set(TRIED) == set(strategies.TYPES) and min(TRIED.values()) >= EXAMPLES // 30, TRIED


N = 2**20
WORST_FOR_PARSING = {
    "JSON empty lists": (b"[" + b"[]," * (N // 3) + b"[]]", media.JSON),
    "JSON empty objects": (b"[" + b"{}," * (N // 3) + b"{}]", media.JSON),
    "JSON one-letter strings": (b"[" + b'"a",' * (N // 4) + b'"a"]', media.JSON),
    "JSON rows of one zero": (b"[" + b"[0]," * (N // 4) + b"[0]]", media.JSON),
    "JSON Lines empty lists": (b"[]\n" * (N // 3), media.JSONLINES),
    "CSV one long row": (b"0," * (N // 2) + b"0", media.CSV),
    "CSV one zero a row": (b"0\n" * (N // 2), media.CSV),
}


@pytest.mark.parametrize("name", list(WORST_FOR_PARSING))
def test_worst_bodies_for_parsing(name):
    """1 MiB bodies made of the smallest values the text formats have: what parsing them costs
    is the bound PARSE_FACTOR states (the decoded result itself stays within 4x, or is refused)."""
    body, kind = WORST_FOR_PARSING[name]
    limits.set_decoded_limit(4 * N)
    try:
        decoded = decode_within_bounds(kind, body)
    finally:
        limits.set_decoded_limit(CAP)
    assert decoded is None or getattr(decoded, "nbytes", 0) <= 4 * len(body) + 8
