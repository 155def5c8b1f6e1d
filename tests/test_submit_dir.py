"""SAGEMAKER_SUBMIT_DIRECTORY (issue 8, point 1): the SDK's ``sourcedir.tar.gz`` on S3 (moto in
server mode on loopback, a real S3 API), a ``file://`` archive or a local directory, in single-
and multi-model mode; a model's own ``code/`` wins; the script's ``model_fn`` wins over the
recognised ``model.joblib``; failures name the variable (single-model: the server stops at start;
multi-model: LoadModel fails).
"""

import io
import subprocess
import sys
import tarfile
import textwrap
import time

import boto3
import httpx
import numpy as np
import pytest

from harness.server import free_port
from tests.builders import classifier, sklearn_model
from tests.test_user_code import tiny_wheel

CSV = {"Content-Type": "text/csv"}
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}
BUCKET = "sdk-bucket"

# In the shape of the SDK's entry points: model_fn wraps the estimator (so its answers are told
# apart from the default loader's), a sibling module and a requirements.txt package are imported.
SCRIPT = """
import os
import joblib
import tinypkg
from helper import OFFSET

class Wrapped:
    def __init__(self, estimator):
        self.estimator = estimator

    def predict(self, rows):
        return self.estimator.predict(rows) + OFFSET + tinypkg.VALUE

def model_fn(model_dir):
    return Wrapped(joblib.load(os.path.join(model_dir, "model.joblib")))
"""
OWN_CODE = """
def predict_fn(data, model):
    return model.predict(data) - 1000
"""


def start_moto(env: dict | None = None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               env={**__import__("os").environ, **(env or {})},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/moto-api/", timeout=1)
            return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("moto did not start")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def moto():
    process, url = start_moto()
    yield url
    stop(process)


def tarball(files: dict[str, bytes | str], links: dict[str, str] | None = None, device: str | None = None) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
        if device:
            info = tarfile.TarInfo(device)
            info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
            tar.addfile(info)
    return out.getvalue()


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """The files of the SDK's sourcedir.tar.gz."""
    wheels = tmp_path_factory.mktemp("wheels")
    return {"serve.py": textwrap.dedent(SCRIPT), "helper.py": "OFFSET = 100\n", "requirements.txt": tiny_wheel(wheels, 7) + "\n"}


@pytest.fixture(scope="module")
def s3(moto, sources):
    client = boto3.client("s3", endpoint_url=moto, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket=BUCKET)
    client.put_object(Bucket=BUCKET, Key="job/source/sourcedir.tar.gz", Body=tarball(sources))
    client.put_object(Bucket=BUCKET, Key="notatar.tar.gz", Body=b"this is no archive")
    client.put_object(Bucket=BUCKET, Key="escape.tar.gz", Body=tarball({"../evil.py": "x = 1"}))
    client.put_object(Bucket=BUCKET, Key="absolute.tar.gz", Body=tarball({"/abs/evil.py": "x = 1"}))
    client.put_object(Bucket=BUCKET, Key="linkout.tar.gz", Body=tarball({"serve.py": "x = 1"}, links={"data": "../../etc"}))
    client.put_object(Bucket=BUCKET, Key="device.tar.gz", Body=tarball({"serve.py": "x = 1"}, device="null"))
    client.put_object(Bucket=BUCKET, Key="noprogram.tar.gz", Body=tarball({"other.py": "x = 1"}))
    return client


def env_for(moto: str, url: str, **extra) -> dict:
    return {**CREDENTIALS, "AWS_ENDPOINT_URL_S3": moto, "SAGEMAKER_SUBMIT_DIRECTORY": url, "SAGEMAKER_PROGRAM": "serve.py", **extra}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("sdk-models")
    sklearn_model(root / "plain")  # model.joblib, no code/: the submit directory serves it
    sklearn_model(root / "own")
    (root / "own" / "code").mkdir()
    (root / "own" / "code" / "serve.py").write_text(textwrap.dedent(OWN_CODE))
    return root


def rows_and_labels():
    model, X = classifier()
    return X[:4], model.predict(X[:4])


def csv(rows) -> str:
    return "\n".join(",".join(str(v) for v in row) for row in rows)


# ------------------------------------------------------------------ working deliveries


def test_multi_model_s3_submit_dir_serves_models_without_code(start_server, s3, moto, models, tmp_path):
    server = start_server(SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=models, MODEL_SERVER_PACKAGES_DIR=tmp_path,
                          **env_for(moto, f"s3://{BUCKET}/job/source/sourcedir.tar.gz"))
    rows, labels = rows_and_labels()
    for name in ("plain", "own"):
        answer = server.client.post("/models", json={"model_name": name, "url": name})
        assert answer.status_code == 200, answer.text
    assert server.client.get("/models/plain").json()["framework"] == "sklearn"
    answer = server.client.post("/models/plain/invoke", content=csv(rows), headers=CSV)
    assert answer.status_code == 200, answer.text
    assert answer.json() == (labels + 107).tolist()  # model_fn's wrapper, helper.OFFSET, tinypkg.VALUE
    answer = server.client.post("/models/own/invoke", content=csv(rows), headers=CSV)
    assert answer.json() == (labels - 1000).tolist()  # its own code/ wins: the default loader, its predict_fn
    cached = sorted(p.name for p in (tmp_path / "sourcedir").iterdir())
    assert len(cached) == 2 and cached[1] == cached[0] + ".complete", cached


def test_single_model_s3_submit_dir_and_the_cache_by_etag(start_server, s3, moto, models, sources, tmp_path):
    env = env_for(moto, f"s3://{BUCKET}/job/source/sourcedir.tar.gz", MODEL_SERVER_MODEL_DIR=models / "plain",
                  MODEL_SERVER_PACKAGES_DIR=tmp_path)
    rows, labels = rows_and_labels()
    first = start_server(**env)
    assert first.client.post("/invocations", content=csv(rows), headers=CSV).json() == (labels + 107).tolist()
    first.stop()
    (marker,) = (tmp_path / "sourcedir").glob("*.complete")
    stamp = marker.stat().st_mtime_ns
    second = start_server(**env)  # same URL and ETag: the unpacked copy is reused
    assert second.client.post("/invocations", content=csv(rows), headers=CSV).status_code == 200
    assert marker.stat().st_mtime_ns == stamp and len(list((tmp_path / "sourcedir").glob("*.complete"))) == 1
    second.stop()
    s3.put_object(Bucket=BUCKET, Key="job/v2/sourcedir.tar.gz", Body=tarball({**sources, "helper.py": "OFFSET = 200\n"}))
    third = start_server(**{**env, "SAGEMAKER_SUBMIT_DIRECTORY": f"s3://{BUCKET}/job/v2/sourcedir.tar.gz"})
    assert third.client.post("/invocations", content=csv(rows), headers=CSV).json() == (labels + 207).tolist()
    assert len(list((tmp_path / "sourcedir").glob("*.complete"))) == 2


@pytest.mark.parametrize("form", ["directory", "file-url-archive"])
def test_local_mode_directory_or_archive(start_server, sources, models, tmp_path, form):
    code = tmp_path / "code"
    code.mkdir()
    for name, content in sources.items():
        (code / name).write_text(content)
    (tmp_path / "sourcedir.tar.gz").write_bytes(tarball(sources))
    url = {"directory": str(code), "file-url-directory": f"file://{code}", "file-url-archive": f"file://{tmp_path}/sourcedir.tar.gz"}[form]
    server = start_server(MODEL_SERVER_MODEL_DIR=models / "plain", SAGEMAKER_SUBMIT_DIRECTORY=url, SAGEMAKER_PROGRAM="serve.py",
                          MODEL_SERVER_PACKAGES_DIR=tmp_path / "packages")
    rows, labels = rows_and_labels()
    assert server.client.post("/invocations", content=csv(rows), headers=CSV).json() == (labels + 107).tolist()


def test_platform_model_path_is_the_model_dir(start_server, sources, models, tmp_path):
    """What a model the SDK repacked gets (PyTorchModel): its code in code/ and
    SAGEMAKER_SUBMIT_DIRECTORY=/opt/ml/model/code, with the model unpacked somewhere else here."""
    model = tmp_path / "repacked"
    sklearn_model(model)
    (model / "code").mkdir()
    for name, content in sources.items():
        (model / "code" / name).write_text(content)
    server = start_server(MODEL_SERVER_MODEL_DIR=model, SAGEMAKER_SUBMIT_DIRECTORY="/opt/ml/model/code", SAGEMAKER_PROGRAM="serve.py",
                          MODEL_SERVER_PACKAGES_DIR=tmp_path / "packages")
    rows, labels = rows_and_labels()
    assert server.client.post("/invocations", content=csv(rows), headers=CSV).json() == (labels + 107).tolist()


# ------------------------------------------------------------------ failures


def expect_start_failure(start_server, env: dict, words: str) -> None:
    with pytest.raises(RuntimeError) as failed:
        start_server(**env)
    text = str(failed.value)
    assert "server exited (2)" in text and "configuration error: SAGEMAKER_SUBMIT_DIRECTORY=" in text, text
    assert words in text, text
    assert "Traceback" not in text


@pytest.mark.parametrize("url, words", [
    ("s3://sdk-bucket/missing/sourcedir.tar.gz", "no such object (or bucket) in S3"),
    ("s3://no-such-bucket/sourcedir.tar.gz", "no such object (or bucket) in S3"),
    ("s3://sdk-bucket", "expected s3://bucket/key naming one object"),
    ("https://example.com/sourcedir.tar.gz", "expected s3://bucket/key (a tar.gz), file://path or a local path"),
    ("s3://sdk-bucket/notatar.tar.gz", "is not a readable tar.gz archive"),
    ("s3://sdk-bucket/escape.tar.gz", "archive member '../evil.py' would land outside the code directory"),
    ("s3://sdk-bucket/absolute.tar.gz", "archive member '/abs/evil.py' would land outside"),
    ("s3://sdk-bucket/linkout.tar.gz", "archive member 'data' links outside the code directory (../../etc)"),
    ("s3://sdk-bucket/device.tar.gz", "archive member 'null' is a device or other special file"),
    ("s3://sdk-bucket/noprogram.tar.gz", "holds no serve.py (SAGEMAKER_PROGRAM)"),
    ("file:///nonexistent/sourcedir.tar.gz", "no such file or directory"),
])
def test_single_model_failure_stops_the_start_naming_the_variable(start_server, s3, moto, models, tmp_path, url, words):
    env = env_for(moto, url, MODEL_SERVER_MODEL_DIR=models / "plain", MODEL_SERVER_PACKAGES_DIR=tmp_path)
    expect_start_failure(start_server, env, words)
    assert not [p for p in tmp_path.rglob("*") if p.name == "evil.py"]


def test_denied_access_is_named(start_server, models, tmp_path):
    """moto enforcing authentication from the first request: the keys are unknown to it, so S3
    answers 403 as it does to a role without s3:GetObject."""
    process, url = start_moto({"INITIAL_NO_AUTH_ACTION_COUNT": "0"})
    try:
        env = env_for(url, f"s3://{BUCKET}/job/source/sourcedir.tar.gz", MODEL_SERVER_MODEL_DIR=models / "plain",
                      MODEL_SERVER_PACKAGES_DIR=tmp_path)
        expect_start_failure(start_server, env, "access denied by S3")
    finally:
        stop(process)


def test_multi_model_failure_is_at_load_model(start_server, s3, moto, models, tmp_path):
    server = start_server(SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=models, MODEL_SERVER_PACKAGES_DIR=tmp_path,
                          **env_for(moto, f"s3://{BUCKET}/missing.tar.gz"))
    assert server.client.get("/ping").status_code == 200
    answer = server.client.post("/models", json={"model_name": "plain", "url": "plain"})
    assert answer.status_code == 404, answer.text
    assert answer.json()["message"] == f"SAGEMAKER_SUBMIT_DIRECTORY=s3://{BUCKET}/missing.tar.gz: no such object (or bucket) in S3"
    answer = server.client.post("/models", json={"model_name": "own", "url": "own"})  # its own code/ needs no submit dir
    assert answer.status_code == 200, answer.text
    rows, labels = rows_and_labels()
    assert server.client.post("/models/own/invoke", content=csv(rows), headers=CSV).json() == (labels - 1000).tolist()
    assert np.all(labels >= 0)


def test_multi_model_archive_path_serves_files_no_framework_recognises(start_server, tmp_path):
    """The AWS scikit-learn container's multi-model suite's setup: SAGEMAKER_SUBMIT_DIRECTORY a plain
    path to a tar.gz, SAGEMAKER_PROGRAM=script.py, models that are a pickle named ``sklearn-model``
    which only the script's model_fn can load (the plain-Python worker serves them)."""
    import pickle

    script = (
        "import os, pickle\n\n"
        "def model_fn(model_dir):\n"
        "    with open(os.path.join(model_dir, 'sklearn-model'), 'rb') as f:\n"
        "        return pickle.load(f)\n"
    )
    (tmp_path / "user_code.tar.gz").write_bytes(tarball({"script.py": script}))
    model, X = classifier()
    for name in ("pickled-model-1", "pickled-model-2"):
        (tmp_path / "models" / name).mkdir(parents=True)
        (tmp_path / "models" / name / "sklearn-model").write_bytes(pickle.dumps(model))
    server = start_server(SAGEMAKER_MULTI_MODEL="true", MODEL_SERVER_MODELS_ROOT=tmp_path / "models", SAGEMAKER_PROGRAM="script.py",
                          SAGEMAKER_SUBMIT_DIRECTORY=tmp_path / "user_code.tar.gz", MODEL_SERVER_PACKAGES_DIR=tmp_path / "packages")
    for name in ("pickled-model-1", "pickled-model-2"):
        assert server.client.post("/models", json={"model_name": name, "url": name}).status_code == 200
        assert server.client.get(f"/models/{name}").json()["framework"] == "python"
        answer = server.client.post(f"/models/{name}/invoke", content=csv(X[:2]), headers=CSV)
        assert answer.status_code == 200 and answer.json() == model.predict(X[:2]).tolist(), answer.text
