"""Every content type's bodies (tests/fuzz/strategies.py) sent to a running server, to a real
scikit-learn model and to one whose ``predict_fn`` echoes its input (so that whatever decodes is
encoded back as the Accept header asks): never a 5xx, never a hang, every error the JSON error
body; the worker's peak memory over the whole run stays within the decoded cap; and afterwards
the same worker serves both models (nothing lost).
"""

from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.builders import sklearn_model
from tests.fuzz import strategies
from tests.fuzz.checks import assert_nothing_lost

EXAMPLES = 400
ECHO = """
def predict_fn(data, model):
    return data
"""
ACCEPTS = st.sampled_from(["application/json", "text/csv", "application/x-npy", "application/jsonlines", "*/*",
                           "text/csv;q=0.5, application/x-npy", "image/png"])
SENT: dict[str, int] = {}


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.fixture(scope="module")
def server(start_module_server, tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    sklearn_model(root / "plain")
    sklearn_model(root / "echo", code=ECHO)
    # 1 MiB bodies, so the decoded cap is 4 MiB: any body that got past it would show in VmHWM.
    server = start_module_server(SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=root, SAGEMAKER_MAX_PAYLOAD_IN_MB="1")
    server.load("plain", "plain")
    server.load("echo", "echo")
    pid = server.client.get("/models/plain").json()["workerPid"]
    before = peak_rss(pid)
    yield server
    assert_nothing_lost(server, ["plain", "echo"])
    assert server.client.get("/models/plain").json()["workerPid"] == pid
    grown = peak_rss(pid) - before
    print(f"\nHTTP bodies sent: {SENT}; worker peak RSS grew {grown / 2**20:.1f} MiB")
    assert grown < 64 * 2**20, grown


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(strategies.bodies, st.sampled_from(["plain", "echo"]), ACCEPTS)
def test_no_body_gets_a_server_error(server, kind_and_body, model, accept):
    kind, body = kind_and_body
    SENT[kind] = SENT.get(kind, 0) + 1
    try:
        response = server.client.post(f"/models/{model}/invoke", content=body,
                                      headers={"Content-Type": kind, "Accept": accept}, timeout=20)
    except httpx.TimeoutException:
        raise AssertionError(f"no answer within 20 s to a {kind} body of {len(body)} bytes") from None
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.status_code >= 400:
        answer = response.json()
        assert set(answer) == {"code", "type", "message"} and answer["code"] == response.status_code


def test_the_run_covered_every_type():
    assert set(SENT) == set(strategies.TYPES) and min(SENT.values()) >= EXAMPLES // 40, SENT
