"""All six frameworks in one server at once, each in its own worker process, all answering."""

import json

FRAMEWORKS = ("sklearn", "xgboost", "pytorch", "onnx", "tensorflow", "prophet")
REQUESTS = {
    "sklearn-iris": (b"[[0.1, 0.2, 0.3, 0.4]]", "application/json"),
    "xgboost-binary": (b"0.1,0.2,0.3,0.4", "text/csv"),
    "pytorch-mlp": (b"[[0.1, 0.2, 0.3, 0.4]]", "application/json"),
    "onnx-classifier": (b"[[0.1, 0.2, 0.3, 0.4]]", "application/json"),
    "tensorflow-savedmodel": (b'{"instances": [[0.1, 0.2, 0.3, 0.4]]}', "application/json"),
    "customer-0001": (b'{"periods": 3}', "application/json"),
}


def test_six_frameworks_in_one_server(start_server, examples):
    for framework in FRAMEWORKS:
        root = examples(framework)
    server = start_server(SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=root)
    for name in REQUESTS:
        server.load(name, root / name / "model")
    workers = {}
    for name, (body, content_type) in REQUESTS.items():
        response = server.client.post(f"/models/{name}/invoke", content=body, headers={"Content-Type": content_type})
        assert response.status_code == 200, (name, response.text)
        assert json.loads(response.content)  # a non-empty prediction
        described = server.client.get(f"/models/{name}").json()
        workers[described["framework"]] = described["workerPid"]
    assert sorted(workers) == sorted(FRAMEWORKS)
    assert len(set(workers.values())) == len(FRAMEWORKS)  # one worker process per framework
    assert len(server.descendants()) == len(FRAMEWORKS)  # and no process per model
