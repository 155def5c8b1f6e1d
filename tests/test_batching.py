"""Dynamic batching (handlers/batching/) over HTTP: concurrent requests to one model share a
predict call, each gets exactly its own answer, a bad request fails alone, and a user's
predict_fn is batched only when the model says it may be.

A user predict_fn that sleeps and answers, per row, how many rows its call saw makes batching
visible in the answers themselves; the frameworks' own predicts show it in the worker's log.
"""

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from tests.builders import classifier, sklearn_model

JSON = {"Content-Type": "application/json"}
CLIENTS = 8

# Answers each row with (rows in this predict call, the row's first value), after a pause long
# enough for the other concurrent requests to queue behind it. A negative value is refused with
# a 400 (status_code, as the sagemaker-inference toolkit's errors carry it).
COUNTING = """
import time
import numpy as np
{declaration}

class Refused(Exception):
    status_code = 400

def predict_fn(data, model):
    time.sleep(0.1)
    if (data < 0).any():
        raise Refused("negative input refused")
    return np.column_stack([np.full(len(data), len(data)), data[:, 0]])
"""


def counting_model(directory, batchable: bool, settings: dict | None = None):
    declaration = "batchable = True" if batchable else ""
    sklearn_model(directory, code=COUNTING.format(declaration=declaration))
    if settings is not None:
        (directory / "batching.json").write_text(json.dumps(settings))
    return directory


def torch_model(directory):
    import torch

    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Linear(8, 64), torch.nn.ReLU(), torch.nn.Linear(64, 3))
    directory.mkdir(parents=True)
    scripted = torch.jit.script(network.eval())
    scripted.save(str(directory / "model.pt"))
    return scripted


@pytest.fixture(scope="module")
def examples_root(examples):
    for framework in ("xgboost", "onnx", "tensorflow"):
        root = examples(framework)
    return root


@pytest.fixture(scope="module")
def root(examples_root):
    directory = examples_root / "batching"
    directory.mkdir()
    return directory


@pytest.fixture(scope="module")
def server(start_module_server, examples_root, root):
    # Enough threads that every concurrent request is in the worker at once, and one worker per
    # framework (no replicas of hot models), so that concurrent requests meet in one batcher.
    return start_module_server(
        SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=examples_root,
        MODEL_SERVER_WORKER_THREADS=str(2 * CLIENTS), MODEL_SERVER_LOG_LEVEL="DEBUG", MODEL_SERVER_AUTO_REPLICATE="false",
    )


def concurrently(server, name, bodies):
    """POST every body at once from its own thread: the responses, in order.

    On a client of their own with a connection kept for every thread: httpcore's sync pool can
    close a surplus keep-alive connection it has just handed to a waiting thread (encode/httpcore
    #1110), which failed one run in 15-20 of the 96-thread bursts here (EBADF, client-side)."""
    limits = httpx.Limits(max_connections=len(bodies), max_keepalive_connections=len(bodies))
    with httpx.Client(base_url=server.url, timeout=60, limits=limits) as client:
        def post(body):
            return client.post(f"/models/{name}/invoke", content=json.dumps(body), headers=JSON)

        with ThreadPoolExecutor(len(bodies)) as pool:
            return list(pool.map(post, bodies))


def seen(responses):
    """(rows the predict call saw, value) of each one-row answer."""
    return [tuple(response.json()[0]) for response in responses]


@pytest.mark.parametrize(
    "name, batchable, settings, merged",
    [
        ("declared", True, None, True),
        ("undeclared", False, None, False),  # predict_fn not declared batchable: never merged
        ("enabled-in-dir", False, {"enabled": True}, True),
        ("disabled-in-dir", True, {"enabled": False}, False),
    ],
)
def test_user_predict_fn_is_batched_only_when_the_model_says_so(server, root, name, batchable, settings, merged):
    server.load(name, counting_model(root / name, batchable, settings))
    responses = concurrently(server, name, [[[float(i), 0, 0, 0]] for i in range(1, CLIENTS + 1)])
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    answers = seen(responses)
    assert [value for _, value in answers] == [float(i) for i in range(1, CLIENTS + 1)]  # each its own row
    largest = max(count for count, _ in answers)
    assert (largest > 1) == merged, answers


def test_max_batch_size_bounds_the_rows_of_one_call(server, root):
    server.load("small-batches", counting_model(root / "small-batches", True, {"max_batch_size": 3}))
    answers = seen(concurrently(server, "small-batches", [[[float(i), 0, 0, 0]] for i in range(CLIENTS)]))
    counts = [count for count, _ in answers]
    assert 1 < max(counts) <= 3, counts


def test_a_bad_request_in_a_batch_fails_alone(server, root):
    server.load("strict", counting_model(root / "strict", True))
    values = [float(i) if i % 4 else -1.0 for i in range(1, CLIENTS + 1)]  # two refused
    responses = concurrently(server, "strict", [[[value, 0, 0, 0]] for value in values])
    for value, response in zip(values, responses):
        if value < 0:
            assert response.status_code == 400, response.text
            assert "negative input refused" in response.json()["message"]
        else:
            assert response.status_code == 200, response.text
            assert response.json()[0][1] == value
    assert "failed (Refused); predicting each alone" in server.log()


def test_a_lone_request_waits_only_when_told_to(server, root):
    """With the default max delay (0 ms) a lone request runs at once; with max_delay_ms it waits
    that long for company."""
    server.load("patient", counting_model(root / "patient", True, {"max_delay_ms": 300}))
    server.load("eager", counting_model(root / "eager", True))
    for name, least, most in (("eager", 0.1, 0.3), ("patient", 0.4, 1.5)):
        server.client.post(f"/models/{name}/invoke", content="[[1, 0, 0, 0]]", headers=JSON)  # warm
        response = server.client.post(f"/models/{name}/invoke", content="[[1, 0, 0, 0]]", headers=JSON)
        elapsed = response.elapsed.total_seconds()
        assert least <= elapsed <= most, (name, elapsed)


def framework_batches(server, model_dir) -> list[int]:
    """Sizes of the merged predicts the worker logged for ``model_dir``."""
    marker = f"{model_dir}: one predict for "
    return [int(line.split(marker)[1].split()[0]) for line in server.log().splitlines() if marker in line]


def many_requests(rng, width, count):
    """Requests of 1-3 rows each; every fifth of a wrong width."""
    return [rng.normal(size=(int(rng.integers(1, 4)), width if i % 5 else width + 1)).round(3) for i in range(count)]


def test_concurrent_sklearn_requests_get_exactly_their_own_answers(server, root):
    model, _ = classifier()
    directory = sklearn_model(root / "logistic")
    # One predict at a time, and a leader waits 20 ms for company: with a one-row predict of
    # ~0.2 ms, requests would otherwise rarely find one running, and no batch need form.
    (directory / "batching.json").write_text(json.dumps({"concurrency": 1, "max_delay_ms": 20}))
    server.load("logistic", directory)
    requests = many_requests(np.random.default_rng(1), 4, 12 * CLIENTS)
    responses = concurrently(server, "logistic", [rows.tolist() for rows in requests])
    for rows, response in zip(requests, responses):
        if rows.shape[1] != 4:
            assert response.status_code == 400 and "features" in response.json()["message"]
            continue
        assert response.status_code == 200, response.text
        assert response.json() == model.predict(rows).tolist()
    assert any(size > 1 for size in framework_batches(server, directory)), "no batch formed"
    counted = [line for line in server.client.get("/metrics").text.splitlines()
               if line.startswith('invocation_batch_size_count{framework="sklearn"}')]
    assert counted and float(counted[0].split()[-1]) > 0, counted  # the front counts merged predicts


def test_concurrent_pytorch_requests_get_their_own_answers(server, root):
    import torch

    directory = root / "mlp"
    network = torch_model(directory)
    (directory / "batching.json").write_text(json.dumps({"concurrency": 1, "max_delay_ms": 20}))  # as above
    server.load("mlp", directory)
    requests = many_requests(np.random.default_rng(2), 8, 12 * CLIENTS)
    responses = concurrently(server, "mlp", [rows.tolist() for rows in requests])
    for rows, response in zip(requests, responses):
        if rows.shape[1] != 8:
            assert response.status_code == 400, response.text
            continue
        assert response.status_code == 200, response.text
        with torch.inference_mode():
            alone = network(torch.from_numpy(rows.astype(np.float32))).numpy()
        # Not bit for bit: BLAS blocks a 1-row and a 30-row product differently (float32 rounding).
        np.testing.assert_allclose(np.array(response.json()), alone, rtol=1e-5, atol=1e-6)
    assert any(size > 1 for size in framework_batches(server, directory)), "no batch formed"


def _rows(rows):
    return rows.tolist()


# Example model -> the JSON body it takes for some rows of 4 features. The TensorFlow columnar
# form and ONNX's named inputs may merge only with their own kind.
EXAMPLES = {
    "xgboost-binary": [_rows],
    "onnx-classifier": [_rows],
    "onnx-two-inputs": [lambda rows: {"a": rows.tolist(), "b": rows[:, :3].tolist()}],
    "tensorflow-savedmodel": [lambda rows: {"instances": rows.tolist()}, lambda rows: {"inputs": rows.tolist()}],
    "tensorflow-keras": [lambda rows: {"instances": rows.tolist()}, _rows],
}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_concurrent_requests_get_the_answers_of_lone_ones(server, examples_root, name):
    """Each framework's answers to a burst of concurrent requests equal its answers to the same
    requests sent one at a time (each predicted alone), up to float32 rounding."""
    server.load(name, examples_root / name / "model")
    rng = np.random.default_rng(3)
    shapes = EXAMPLES[name]
    bodies = [shapes[i % len(shapes)](rng.normal(size=(int(rng.integers(1, 4)), 4)).round(3)) for i in range(6 * CLIENTS)]
    alone = [server.client.post(f"/models/{name}/invoke", content=json.dumps(body), headers=JSON) for body in bodies]
    together = concurrently(server, name, bodies)
    for lone, merged in zip(alone, together):
        assert lone.status_code == merged.status_code == 200, (lone.text, merged.text)
        if isinstance(lone.json(), dict):
            assert lone.json().keys() == merged.json().keys()
        np.testing.assert_allclose(flat(merged.json()), flat(lone.json()), rtol=1e-5, atol=1e-6)


def flat(value) -> np.ndarray:
    """Every number of a JSON answer, in order."""
    if isinstance(value, dict):
        return np.concatenate([flat(value[key]) for key in sorted(value)])
    if isinstance(value, list) and value and isinstance(value[0], (dict, list)):
        return np.concatenate([flat(item) for item in value])
    return np.asarray(value, dtype=float).ravel()


def test_batching_file_errors_fail_the_load(server, root):
    directory = sklearn_model(root / "bad-settings")
    (directory / "batching.json").write_text('{"max_batch_size": 0}')
    response = server.load("bad-settings", directory, expect=400)
    assert "batching.json" in response.json()["message"] and "max_batch_size" in response.json()["message"]


def test_max_batch_size_variable_turns_batching_off(start_server, tmp_path):
    server = start_server(SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=tmp_path, MODEL_SERVER_BATCH_MAX_SIZE="1")
    server.load("declared", counting_model(tmp_path / "declared", True))
    answers = seen(concurrently(server, "declared", [[[float(i), 0, 0, 0]] for i in range(4)]))
    assert max(count for count, _ in answers) == 1, answers
