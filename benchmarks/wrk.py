"""Drive a server with ``wrk`` (Debian's package), the independent load generator of ``peers.py``.

``run(port, paths, body, content_type, clients, seconds, zipf=None)`` keeps ``clients``
keep-alive connections busy on 127.0.0.1 for ``seconds`` and returns requests/s and p50/p99
latency. With several paths each request picks one (uniformly, or by Zipf's law of exponent
``zipf`` over the paths in order), which is how many models are driven with one hot spot.
wrk is C on its own threads, so the client costs the server far less CPU than a Python one;
it still shares the two cores, as a real co-located client would.
"""

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

INSTALL_HINT = "wrk not found: install Debian's package (apt-get install wrk)"

# Each thread seeds its own generator; `done` prints one JSON line of the run's figures.
LUA = """
local paths = {%(paths)s}
local cdf = %(cdf)s
local n = #paths
wrk.method = "POST"
wrk.body = %(body)s
wrk.headers["Content-Type"] = %(content_type)s
wrk.headers["Accept"] = %(accept)s

local next_seed = 1
function setup(thread)
  thread:set("seed", next_seed)
  next_seed = next_seed + 1
end

function init(args)
  math.randomseed(seed * 7919)
end

local function pick()
  if cdf == nil then return math.random(n) end
  local u, lo, hi = math.random(), 1, n
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cdf[mid] < u then lo = mid + 1 else hi = mid end
  end
  return lo
end

if n > 1 then
  request = function() return wrk.format(nil, paths[pick()]) end
else
  wrk.path = paths[1]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\n{"requests": %%d, "duration_us": %%d, "errors": %%d, "status_errors": %%d, "p50_us": %%d, "p99_us": %%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
"""


def available() -> bool:
    return shutil.which("wrk") is not None


def _lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string literal is a valid Lua string literal for ASCII text


def _lua_bytes(data: bytes) -> str:
    """Any bytes as a Lua string literal: printable ASCII as is, the rest as decimal escapes
    (an NPY body is binary, which a JSON string cannot carry)."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        text = None
    if text is not None and text.isprintable():
        return _lua_string(text)
    keep = set(range(0x20, 0x7F)) - {ord('"'), ord("\\")}
    return '"' + "".join(chr(byte) if byte in keep else f"\\{byte:03d}" for byte in data) + '"'


def _cdf(count: int, exponent: float) -> str:
    weights = [1 / (rank ** exponent) for rank in range(1, count + 1)]
    total, running, cumulative = sum(weights), 0.0, []
    for weight in weights:
        running += weight
        cumulative.append(running / total)
    cumulative[-1] = 1.0
    return "{" + ",".join(f"{value:.9f}" for value in cumulative) + "}"


def script(paths: list[str], body: bytes, content_type: str, zipf: float | None = None,
           accept: str = "application/json") -> str:
    """The Lua script of one run (exposed so that a run can be repeated by hand)."""
    return LUA % {
        "paths": ",".join(_lua_string(path) for path in paths),
        "cdf": _cdf(len(paths), zipf) if zipf and len(paths) > 1 else "nil",
        "body": _lua_bytes(body),
        "content_type": _lua_string(content_type),
        "accept": _lua_string(accept),
    }


def run(port: int, paths: list[str], body: bytes, content_type: str, clients: int, seconds: float,
        zipf: float | None = None, accept: str = "application/json", timeout: float = 10) -> dict:
    """req/s, p50/p99 ms and error count of one bounded wrk run against 127.0.0.1:port; a request
    unanswered after ``timeout`` seconds counts as an error."""
    if not available():
        raise RuntimeError(INSTALL_HINT)
    with tempfile.TemporaryDirectory() as tmp:
        lua = Path(tmp) / "run.lua"
        lua.write_text(script(paths, body, content_type, zipf, accept))
        command = ["wrk", f"-t{min(clients, 2)}", f"-c{clients}", f"-d{max(1, round(seconds))}s",
                   "--timeout", f"{max(1, round(timeout))}s", "-s", str(lua), f"http://127.0.0.1:{port}{paths[0]}"]
        finished = subprocess.run(command, capture_output=True, text=True, timeout=seconds + timeout + 60)
    lines = [line for line in finished.stdout.splitlines() if line.startswith('{"requests"')]
    if finished.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({finished.returncode}): {finished.stderr.strip() or finished.stdout[-500:]}")
    figures = json.loads(lines[-1])
    return {
        "requests_per_s": figures["requests"] / (figures["duration_us"] / 1e6),
        "p50_ms": figures["p50_us"] / 1000,
        "p99_ms": figures["p99_us"] / 1000,
        "errors": figures["errors"] + figures["status_errors"],
        "requests": figures["requests"],
    }
