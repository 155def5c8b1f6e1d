"""Issue 9, the request side, against a real server: bodies that lie about their size or are
broken answer 400/413 before anything is allocated, LoadModel urls the filesystem chokes on are
400s, headers from user code cannot break a response, routes never redirect, and a crowd of
idle or slow connections cannot keep ``/ping`` from answering."""

import io
import resource
import select
import socket
import threading
import time
import zipfile
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
import uvicorn

from harness.server import free_port
from server.front.http.connections import guarded_protocol
from tests.builders import sklearn_model
from tests.fuzz import bodies
from tests.fuzz.strategies import npy_claiming

STRING_OUTPUTS = """
import numpy as np

def predict_fn(data, model):
    return {"label": np.array(["yes", "no"]), "score": np.array([0.5, 0.25])}
"""

BAD_HEADER = """
def predict_fn(data, model, context):
    context.set_response_header(0, "X-Evil", "a\\r\\nSet-Cookie: stolen=1")
    context.set_response_header(0, "X-Fine", "kept")
    context.set_response_header(0, "Content-Length", "1")
    return model.predict(data)
"""


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    sklearn_model(root / "plain")
    sklearn_model(root / "strings", code=STRING_OUTPUTS)
    sklearn_model(root / "bad-header", code=BAD_HEADER)
    return root


@pytest.fixture(scope="module")
def server(start_module_server, root):
    server = start_module_server(SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=root)
    for name in ("plain", "strings", "bad-header"):
        server.load(name, name)
    return server


def invoke(server, body: bytes, content_type: str, name: str = "plain"):
    return server.client.post(f"/models/{name}/invoke", content=body, headers={"Content-Type": content_type})


def assert_error(response, status: int, words: str) -> None:
    assert response.status_code == status, response.text
    answer = response.json()
    assert answer["code"] == status and words in answer["message"], answer
    assert "Traceback" not in answer["message"] and "/tmp" not in answer["message"]


def peak_rss(pid: int) -> int:
    """The process's high-water RSS (VmHWM), in bytes: what a request made it allocate at worst."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


# ---------------------------------------------------------------------------------- 9.2, 9.3, 9.5


@pytest.mark.parametrize("case, make, raised", bodies.MALFORMED_NPZ, ids=[c[0] for c in bodies.MALFORMED_NPZ])
def test_malformed_npz_is_400(server, case, make, raised):
    body = make()
    with pytest.raises(raised):  # the body is the case it names: np.load fails on it that way
        archive = np.load(io.BytesIO(body))
        [archive[name] for name in archive.files]
    assert_error(invoke(server, body, "application/x-npz"), 400, "NPZ")


def test_npy_starting_with_pk_is_400(server):
    with pytest.raises(zipfile.BadZipFile):
        np.load(io.BytesIO(bodies.npy_starting_with_pk()))
    assert_error(invoke(server, bodies.npy_starting_with_pk(), "application/x-npy"), 400, "application/x-npz")


def test_zip_bomb_is_413_without_inflating(server):
    bomb = bodies.zip_bomb(512 * 2**20)
    assert len(bomb) < 2**20
    pid = server.client.get("/models/plain").json()["workerPid"]
    before = peak_rss(pid)
    assert_error(invoke(server, bomb, "application/x-npz"), 413, "cap on decoded input")
    assert peak_rss(pid) - before < 32 * 2**20  # np.load took the worker up by the full 512 MiB
    assert invoke(server, bodies.npy(np.zeros((2, 4))), "application/x-npy").status_code == 200


@pytest.mark.parametrize("shape", [(2**40, 4), (2**20, 1024), (10**30,)])
def test_npy_header_claiming_more_than_the_body_is_400(server, shape):
    pid = server.client.get("/models/plain").json()["workerPid"]
    before = peak_rss(pid)
    assert_error(invoke(server, bodies.lying_npy(shape), "application/x-npy"), 400, "the body holds")
    assert peak_rss(pid) - before < 32 * 2**20


def test_an_empty_array_with_huge_axes_is_413(server):
    """Shape (8, 2**40, 0) holds nothing, yet is 8 * 2**40 empty lists once written as JSON:
    it took the fuzz tier's process to 7 GB before it was refused."""
    body = npy_claiming("<f8", False, (8, 2**40, 0), b"")
    assert_error(invoke(server, body, "application/x-npy", "strings"), 413, "cap on decoded input")


def test_npz_member_claiming_more_than_it_holds_is_400(server):
    body = bodies.npz(x=np.zeros((1, 4))).replace(b"(1, 4)", b"(1099511627776, 4)", 1)
    response = invoke(server, body, "application/x-npz")
    assert response.status_code in (400, 413), response.text


def test_strings_that_would_widen_to_gigabytes_are_413(server):
    # NumPy gives every element the width of the longest: 100k one-letter strings and one of
    # 100k letters would be a 40 GB array from a 500 kB body.
    body = b'["' + b"a" * 100_000 + b'"' + b',"a"' * 100_000 + b"]"
    pid = server.client.get("/models/plain").json()["workerPid"]
    before = peak_rss(pid)
    assert_error(invoke(server, body, "application/json"), 413, "cap on decoded input")
    assert peak_rss(pid) - before < 64 * 2**20


def test_a_dict_of_string_arrays_is_encoded_as_json(server):
    response = invoke(server, b"[[1, 2, 3, 4]]", "application/json", "strings")
    assert response.status_code == 200, response.text
    assert response.json() == {"label": ["yes", "no"], "score": [0.5, 0.25]}


def test_the_decoded_cap_follows_its_variable(start_server, root):
    """1 MiB payloads, factor 2: a 3 MiB array is refused, a 1.5 MiB one served (the worker
    got the front's cap, not a default)."""
    server = start_server(
        SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=root,
        SAGEMAKER_MAX_PAYLOAD_IN_MB="1", MODEL_SERVER_MAX_DECODED_FACTOR="2",
    )
    server.load("plain", "plain")
    big = bodies.npz(compressed=True, x=np.zeros((3 * 2**20 // 32, 4)))
    fits = bodies.npz(compressed=True, x=np.zeros((3 * 2**20 // 64, 4)))
    assert len(big) < 2**20 and len(fits) < 2**20
    assert_error(invoke(server, big, "application/x-npz"), 413, "2097152-byte cap")
    assert invoke(server, fits, "application/x-npz").status_code == 200


# ---------------------------------------------------------------------------------- 9.4


def test_load_urls_the_filesystem_chokes_on(server, root):
    (root / "loop-a").symlink_to(root / "loop-b")
    (root / "loop-b").symlink_to(root / "loop-a")
    cases = [
        ("loop-a", 400, "symlink loop"),
        ("loop-a/model", 400, "symlink loop"),
        ("x" * 300, 400, "File name too long"),
        ("plain/" + "y" * 300 + "/z", 400, "File name too long"),
        ("/".join(["d"] * 3000), 400, "File name too long"),  # past PATH_MAX
    ]
    for url, status, words in cases:
        assert_error(server.load("m", url, expect=None), status, words)
    assert_error(server.client.post("/models", content=b'{"model_name": "m", "url": "\\udcff"}'), 400, "JSON")
    assert server.client.get("/models/m").status_code == 404


# ---------------------------------------------------------------------------------- 9.10


def raw_exchange(server, request: bytes, timeout: float = 15) -> tuple[float, bytes]:
    """Send raw bytes, read until the server closes: (seconds it took, everything it sent)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return time.monotonic() - started, b"".join(chunks)


def json_error(raw: bytes, status: int) -> dict:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode()), raw[:200]
    assert b"content-type: application/json" in head.lower()
    answer = orjson.loads(body)
    assert answer["code"] == status
    return answer


def test_headers_user_code_cannot_carry_are_dropped(server):
    response = invoke(server, b"[[1, 2, 3, 4]]", "application/json", "bad-header")
    assert response.status_code == 200, response.text
    assert response.headers["x-fine"] == "kept"
    assert "x-evil" not in response.headers and "set-cookie" not in response.headers
    assert response.json() and int(response.headers["content-length"]) == len(response.content)


@pytest.mark.parametrize("path", ["/ping/", "/models/", "/models/plain/", "/execution-parameters/"])
def test_trailing_slash_is_404_json_not_a_redirect(server, path):
    response = server.client.get(path, headers={"Host": "evil.example"})
    assert "location" not in response.headers
    assert_error(response, 404, "no such route")


@pytest.mark.parametrize("request_bytes", [
    b"GARBAGE\r\n\r\n",
    b"GET /ping HTTP/9.9\r\n\r\n",
    b"GET /ping HTTP/1.1\r\nBad Header: x\r\n\r\n",
    b"GET /ping HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS hello on the plain port
])
def test_malformed_requests_get_json_400(server, request_bytes):
    _, raw = raw_exchange(server, request_bytes)
    assert "malformed" in json_error(raw, 400)["message"]


@pytest.mark.parametrize("headers", [
    b"X-Big: " + b"a" * 200_000 + b"\r\n",  # past the parser's read: counted as it arrives
    b"".join(b"X-%d: %s\r\n" % (n, b"a" * 1000) for n in range(70)),  # 70 KB that come whole in one read
])
def test_oversized_headers_are_431(server, headers):
    _, raw = raw_exchange(server, b"GET /ping HTTP/1.1\r\n" + headers + b"\r\n")
    assert "exceed 65536 bytes" in json_error(raw, 431)["message"]
    assert server.client.get("/ping").status_code == 200


# ---------------------------------------------------------------------------------- 9.9


def test_headers_that_never_finish_are_408(server):
    took, raw = raw_exchange(server, b"POST /models/plain/invoke HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n")
    assert "request headers took over" in json_error(raw, 408)["message"]
    assert 9 < took < 14, took


def test_the_header_deadline_holds_for_every_connection_idle_or_trickling(server):
    """300 connections stuck in their headers at once: most sent part of a request and went quiet,
    some trickle a header line every half second, some sent only the empty lines a client may send
    before a request (bytes the parser skips, once held for ever: the keep-alive timer was off and
    no request had begun). Every one is answered 408 and closed within 10 s of its first byte."""
    kinds = {"partial": 240, "trickling": 20, "blank": 20, "blank-trickling": 20}
    first = {"partial": b"POST /models/plain/invoke HTTP/1.1\r\nHost: x\r\n", "trickling": b"GET /ping HTTP/1.1\r\n",
             "blank": b"\r\n", "blank-trickling": b"\r\n"}
    more = {"trickling": b"X-Slow: 1\r\n", "blank-trickling": b"\r\n"}
    open_, heard, closed = {}, {}, {}
    try:
        for kind, count in kinds.items():
            for _ in range(count):
                sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
                sock.sendall(first[kind])
                open_[sock] = (kind, time.monotonic())
                heard[sock] = b""
        deadline = time.monotonic() + 14
        next_trickle = time.monotonic() + 0.5
        while len(closed) < len(open_) and time.monotonic() < deadline:
            if time.monotonic() >= next_trickle:
                next_trickle += 0.5
                for sock, (kind, _) in open_.items():
                    if kind in more and sock not in closed:
                        try:
                            sock.sendall(more[kind])
                        except OSError:
                            pass  # answered and shut: what it sends is dropped
            readable, _, _ = select.select([s for s in open_ if s not in closed], [], [], 0.05)
            for sock in readable:
                try:
                    chunk = sock.recv(65536)
                except OSError:
                    chunk = b""
                heard[sock] += chunk
                if not chunk:
                    closed[sock] = time.monotonic() - open_[sock][1]
        late = {kind: sum(1 for s, (k, _) in open_.items() if k == kind and s not in closed) for kind in kinds}
        assert not any(late.values()), f"still open 14 s after their first byte: {late}"
        assert all(9 < seconds < 13 for seconds in closed.values()), sorted(closed.values())[::30]
        assert all(heard[sock].startswith(b"HTTP/1.1 408 ") for sock in open_)
    finally:
        for sock in open_:
            sock.close()
    assert server.client.get("/ping").status_code == 200


def ping_seconds(server) -> float:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 200 ")
    return time.monotonic() - started


def test_idle_and_slow_connections_cannot_starve_ping(start_server, root):
    """200 connections hanging on (half saying nothing, half stuck in their headers) against a
    front limited to 128 descriptors: /ping still answers at once, and so does a model."""
    server = start_server(SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=root)
    server.load("plain", "plain")
    resource.prlimit(server.pid, resource.RLIMIT_NOFILE, (128, 128))
    hanging, timings = [], []
    try:
        for _ in range(3):
            for index in range(200):
                sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
                if index % 2:
                    sock.sendall(b"POST /models/plain/invoke HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                hanging.append(sock)
            timings.append(ping_seconds(server))
        print(f"\n/ping under 200 hanging connections x3, 128 descriptors: {[round(t, 3) for t in timings]} s")
        assert max(timings) < 2, timings
        response = httpx.post(f"{server.url}/models/plain/invoke", content=b"1,2,3,4", headers={"Content-Type": "text/csv"})
        assert response.status_code == 200, response.text
    finally:
        for sock in hanging:
            sock.close()
    assert server.client.get("/ping").status_code == 200


def test_a_body_that_stops_coming_is_cut_off():
    """The body timeout (60 s and more in the server) with a 1 s one, on the same protocol class
    under a real uvicorn: the connection is closed, and the handler reading the body sees the
    client gone instead of waiting for ever."""
    seen = []

    async def app(scope, receive, send):
        while (message := await receive())["type"] == "http.request" and message.get("more_body"):
            pass
        seen.append(message["type"])
        if message["type"] == "http.request":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, http=guarded_protocol(1.0), lifespan="off",
                            log_config=None, loop="uvloop")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
            started = time.monotonic()
            assert sock.recv(100) == b""  # closed, not answered
            assert 0.9 < time.monotonic() - started < 5
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:  # a whole body is served
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
            assert sock.recv(100).startswith(b"HTTP/1.1 200 ")
        assert seen[0] == "http.disconnect" and seen[-1] == "http.request"
    finally:
        server.should_exit = True
        thread.join(10)
