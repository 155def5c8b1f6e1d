"""What a fuzzed server must still be afterwards: nothing lost."""

import re


def worker_restarts(server) -> float:
    text = server.client.get("/metrics").text
    return sum(float(value) for value in re.findall(r"^worker_restarts_total\{[^}]*\} (\S+)$", text, re.M))


def assert_nothing_lost(server, models: list[str] | None) -> None:
    """No worker died, and every model (``None``: the single model) still answers a good request."""
    assert worker_restarts(server) == 0, server.client.get("/metrics").text
    assert server.client.get("/ping").status_code == 200
    paths = ["/invocations"] if models is None else [f"/models/{name}/invoke" for name in models]
    for path in paths:
        response = server.client.post(path, content=b"5.1,3.5,1.4,0.2", headers={"Content-Type": "text/csv"})
        assert response.status_code == 200, (path, response.text)
