def test_mme_loads_and_invokes_sklearn(start_server, examples):
    root = examples("sklearn")
    server = start_server(SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=root)
    server.load("iris", root / "sklearn-iris" / "model")
    response = server.client.post("/models/iris/invoke", content=b"1,2,3,4\n", headers={"Content-Type": "text/csv"})
    assert response.status_code == 200, response.text
    assert len(response.json()) == 1
