"""The servers ``peers.py`` compares, each behind one small interface.

Every server is started on 127.0.0.1 with one math thread per worker (``THREAD_ENV``), speaks
its own API, and is measured as the whole process tree it starts. A server says which model
kinds it serves (``kinds``), whether it holds many models in a fixed set of processes
(``many``: a process per model, as in multi-model-server and TorchServe, cannot hold 200 on
this machine), how to LoadModel / unload (``load``, ``unload``), and the path and body of one
prediction (``path``, ``request``). The bodies are each API's own form of the same one row of
four floats: CSV for ours, MMS and TorchServe, the V2 JSON tensor for MLServer.
"""

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from benchmarks.peer_models import Model
from harness.server import free_port

ROOT = Path(__file__).resolve().parent.parent
ROW = [0.5, -1.2, 3.3, 0.1]
CSV = (",".join(str(value) for value in ROW).encode(), "text/csv")
THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "NUMEXPR_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def start_ours(env: dict, log_path: Path):
    """Our server in multi-model mode, through the launcher tests and benchmarks share."""
    from harness.server import ServerProcess

    return ServerProcess(env, log_path)


class Peer:
    label = "?"
    kinds = frozenset({"sklearn", "xgboost", "torch"})
    many = True
    loads = True  # False for the floors, which answer any path and hold no model

    def __init__(self, workdir: Path, workers: int):
        self.workdir = workdir
        self.workers = workers
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen | None = None
        self.port = free_port()
        self.client = httpx.Client(timeout=300)

    # -- lifecycle
    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict:
        return {}

    def start(self) -> None:
        log = open(self.workdir / "server.log", "wb")
        self.process = subprocess.Popen(self.command(), cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT,
                                        env={**os.environ, **THREAD_ENV, **self.env()}, start_new_session=True)
        self.wait_ready()

    def ready(self) -> bool:
        return self.client.get(f"http://127.0.0.1:{self.port}/ping").status_code == 200

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.label} exited ({self.process.returncode}); see {self.workdir}/server.log")
            try:
                if self.ready():
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.label} not ready within {timeout}s; see {self.workdir}/server.log")

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        """SIGTERM to the process group it was started in, SIGKILL to what is left after 30 s."""
        if self.process is None:
            return
        for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(wait)
            except subprocess.TimeoutExpired:
                continue
            try:  # the leader is gone; give its children (workers) the same signal
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
        self.client.close()

    # -- models
    def prepare(self, models: list[Model]) -> None:
        """Write the server's model store for these models (untimed)."""

    def load(self, model: Model) -> None:
        raise NotImplementedError

    def unload(self, name: str) -> None:
        raise NotImplementedError

    def path(self, name: str) -> str:
        return f"/models/{name}/invoke"

    def request(self) -> tuple[bytes, str]:
        return CSV

    def url(self, path: str, port: int | None = None) -> str:
        return f"http://127.0.0.1:{port or self.port}{path}"

    def check(self, response: httpx.Response, what: str) -> None:
        if response.status_code != 200:
            raise RuntimeError(f"{self.label} {what}: {response.status_code} {response.text[:300]}")


class Ours(Peer):
    label = "ours"

    def __init__(self, workdir: Path, workers: int, models_root: Path, extra_env: dict, label: str = "ours"):
        super().__init__(workdir, workers)
        self.label = label
        self.models_root = models_root
        self.extra_env = extra_env
        self.server = None

    def start(self) -> None:
        env = {**THREAD_ENV, "SAGEMAKER_MULTI_MODEL": "true", "MODEL_SERVER_MODELS_ROOT": str(self.models_root),
               "MODEL_SERVER_LOG_LEVEL": "WARNING", "MODEL_SERVER_INTRA_OP_THREADS": "1",
               "MODEL_SERVER_ACCEL_REPORT": "false", **self.extra_env}
        self.server = start_ours(env, self.workdir / "server.log")
        self.port = self.server.port

    @property
    def pid(self) -> int:
        return self.server.process.pid

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        self.client.close()

    def load(self, model: Model) -> None:
        self.check(self.client.post(self.url("/models"), json={"model_name": model.name, "url": str(model.directory)}),
                   f"LoadModel {model.name}")

    def unload(self, name: str) -> None:
        self.check(self.client.delete(self.url(f"/models/{name}")), f"unload {name}")


class Floor(Peer):
    """``benchmarks/floor.py``: Starlette on uvicorn, or (``raw``) uvloop and httptools alone."""

    loads = False

    def __init__(self, workdir: Path, workers: int, raw: bool):
        super().__init__(workdir, workers)
        self.raw = raw
        self.label = "raw" if raw else "starlette"

    def command(self) -> list[str]:
        return [sys.executable, str(ROOT / "benchmarks" / "floor.py"), str(self.port)] + (["--raw"] if self.raw else [])

    def ready(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1):
            return True

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.ready():
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.label} floor did not listen")


# The incumbent's handler service, as the AWS scikit-learn container writes it (its
# handler_service.py): the toolkit's DefaultHandlerService over a default inference handler
# that decodes with the toolkit's decoder (text types as float32), calls model.predict and
# encodes with the toolkit's encoder. The one change: a one-row CSV decodes to a 1-D array,
# which scikit-learn refuses, so it is made one row of a 2-D array.
MMS_HANDLER = '''\
import numpy as np
from sagemaker_inference import content_types, decoder, default_inference_handler, encoder
from sagemaker_inference.default_handler_service import DefaultHandlerService
from sagemaker_inference.transformer import Transformer


class HandlerService(DefaultHandlerService):
    class DefaultSKLearnUserModuleInferenceHandler(default_inference_handler.DefaultInferenceHandler):
        @staticmethod
        def default_model_fn(model_dir):
            raise NotImplementedError("Please provide a model_fn implementation.")

        @staticmethod
        def default_input_fn(input_data, content_type):
            array = decoder.decode(input_data, content_type)
            array = array.reshape(1, -1) if array.ndim == 1 else array
            return array.astype(np.float32) if content_type in content_types.UTF8_TYPES else array

        @staticmethod
        def default_predict_fn(input_data, model):
            return model.predict(input_data)

        @staticmethod
        def default_output_fn(prediction, accept):
            return encoder.encode(prediction, accept)

    def __init__(self):
        transformer = Transformer(default_inference_handler=self.DefaultSKLearnUserModuleInferenceHandler())
        super().__init__(transformer=transformer)
'''

# The user's script (SAGEMAKER_PROGRAM): the container imports one for every model.
MMS_USER_SCRIPT = '''\
import os


class _Booster:
    def __init__(self, booster):
        self.booster = booster

    def predict(self, rows):
        return self.booster.inplace_predict(rows)


def model_fn(model_dir):
    if os.path.exists(os.path.join(model_dir, "model.joblib")):
        import joblib

        return joblib.load(os.path.join(model_dir, "model.joblib"))
    import xgboost

    booster = xgboost.Booster(model_file=os.path.join(model_dir, "model.ubj"))
    booster.set_param({"nthread": 1})
    return _Booster(booster)
'''


class MMS(Peer):
    """multi-model-server 1.1 with sagemaker-inference, configured as the scikit-learn container does.

    Its config.properties.tmp and serving_mms.py: model store ``/``, inference and management
    on one port (so ``POST /models`` and ``/models/{name}/invoke`` are SageMaker's), the
    handler service as default handler, job queue 100, request size 6 MB, JVM heap
    (workers + 2 x workers) x 6 MB x 1.2 + 128 MB. Left out: ``-XX:+UseParNewGC`` (Java 8
    only; this JVM is 17) and the execution-parameters plugin jar.
    """

    label = "mms"
    kinds = frozenset({"sklearn", "xgboost"})
    many = False

    def __init__(self, workdir: Path, workers: int, venv: Path):
        super().__init__(workdir, workers)
        self.venv = venv
        self.port = _low_free_port()  # its front refuses ports above 32767 ("Invalid port number")

    def command(self) -> list[str]:
        code = self.workdir / "code"
        code.mkdir(exist_ok=True)
        (code / "sklearn_handler_service.py").write_text(MMS_HANDLER)
        (code / "inference.py").write_text(MMS_USER_SCRIPT)
        cores = os.cpu_count() or 1
        heap = f"{int((cores + 2 * cores) * 6 * 1.2) + 128}m"
        (self.workdir / "config.properties").write_text(
            f"vmargs=-XX:-UseLargePages -XX:MaxMetaspaceSize=32M -XX:InitiatingHeapOccupancyPercent=25"
            f" -Xms{heap} -Xmx{heap} -XX:MaxDirectMemorySize={heap}\n"
            f"model_store=/\nload_models=\nplugins_path={self.workdir}/plugins\n"
            f"inference_address=http://127.0.0.1:{self.port}\nmanagement_address=http://127.0.0.1:{self.port}\n"
            f"default_workers_per_model={self.workers}\nmax_request_size={6 * 2**20}\n"
            f"decode_input_request=false\ndefault_service_handler=sklearn_handler_service\n"
            f"job_queue_size=100\npreload_model=true\n")
        toolkit = next((self.venv / "lib").glob("python3*/site-packages/sagemaker_inference/etc/log4j2.xml"))
        return [str(self.venv / "bin" / "multi-model-server"), "--start", "--foreground",
                "--mms-config", str(self.workdir / "config.properties"), "--log-config", str(toolkit)]

    def env(self) -> dict:
        return {"PATH": f"{self.venv / 'bin'}:{os.environ['PATH']}", "PYTHONPATH": str(self.workdir / "code"),
                "TEMP": str(self.workdir)}

    def load(self, model: Model) -> None:
        response = self.client.post(self.url("/models"), json={"model_name": model.name, "url": str(model.canonical())})
        self.check(response, f"LoadModel {model.name}")

    def unload(self, name: str) -> None:
        self.check(self.client.delete(self.url(f"/models/{name}")), f"unload {name}")


def _low_free_port() -> int:
    for _ in range(100):
        port = random.randint(20000, 32000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000-32000")


class MLServer(Peer):
    """MLServer with its scikit-learn and XGBoost runtimes, ``parallel_workers`` inference processes."""

    label = "mlserver"
    kinds = frozenset({"sklearn", "xgboost"})
    RUNTIMES = {"sklearn": "mlserver_sklearn.SKLearnModel", "xgboost": "mlserver_xgboost.XGBoostModel"}

    def __init__(self, workdir: Path, workers: int, venv: Path):
        super().__init__(workdir, workers)
        self.venv = venv
        self.repository = workdir / "repository"
        self.repository.mkdir(exist_ok=True)

    def command(self) -> list[str]:
        (self.repository / "settings.json").write_text(json.dumps({
            "host": "127.0.0.1", "http_port": self.port, "grpc_port": free_port(), "metrics_port": free_port(),
            "parallel_workers": self.workers, "load_models_at_startup": False, "debug": False,
            "model_repository_root": str(self.repository)}))
        return [str(self.venv / "bin" / "mlserver"), "start", str(self.repository)]

    def ready(self) -> bool:
        return self.client.get(self.url("/v2/health/ready")).status_code == 200

    def prepare(self, models: list[Model]) -> None:
        for model in models:
            target = self.repository / model.name
            target.mkdir(exist_ok=True)
            (target / "model-settings.json").write_text(json.dumps({
                "name": model.name, "implementation": self.RUNTIMES[model.kind],
                "parameters": {"uri": str(model.canonical_file())}}))

    def load(self, model: Model) -> None:
        self.check(self.client.post(self.url(f"/v2/repository/models/{model.name}/load")), f"LoadModel {model.name}")

    def unload(self, name: str) -> None:
        self.check(self.client.post(self.url(f"/v2/repository/models/{name}/unload")), f"unload {name}")

    def path(self, name: str) -> str:
        return f"/v2/models/{name}/infer"

    def request(self) -> tuple[bytes, str]:
        body = {"inputs": [{"name": "input-0", "shape": [1, len(ROW)], "datatype": "FP64", "data": ROW}]}
        return json.dumps(body).encode(), "application/json"


# TorchServe's custom handler for all three kinds: CSV rows in, a JSON list per request out.
TORCHSERVE_HANDLER = '''\
import json
import os

import numpy as np


class Handler:
    def initialize(self, context):
        model_dir = context.system_properties["model_dir"]
        files = os.listdir(model_dir)
        if "model.joblib" in files:
            import joblib

            self.kind, self.model = "sklearn", joblib.load(os.path.join(model_dir, "model.joblib"))
        elif "model.ubj" in files:
            import xgboost

            self.kind, self.model = "xgboost", xgboost.Booster(model_file=os.path.join(model_dir, "model.ubj"))
            self.model.set_param({"nthread": 1})
        else:
            import torch

            torch.set_num_threads(1)
            self.torch = torch
            self.kind, self.model = "torch", torch.jit.load(os.path.join(model_dir, "model.pt")).eval()
        self.initialized = True

    def handle(self, data, context):
        rows = []
        for item in data:
            body = item.get("body") or item.get("data")
            text = body if isinstance(body, str) else bytes(body).decode()
            rows.append(np.array(text.split(","), dtype=np.float32))
        rows = np.stack(rows)
        if self.kind == "sklearn":
            out = self.model.predict(rows)
        elif self.kind == "xgboost":
            out = self.model.inplace_predict(rows)
        else:
            with self.torch.inference_mode():
                out = self.model(self.torch.from_numpy(rows)).numpy()
        return [json.dumps(row.tolist()) for row in out]
'''


# TorchServe's handler for networks (benchmarks/networks.py): an NPY array per request in, the
# requests of one batch stacked along their first axis, an NPY array per request out.
TORCHSERVE_NPY_HANDLER = '''\
import io
import os

import numpy as np
import torch


class Handler:
    def initialize(self, context):
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        self.model = torch.jit.load(os.path.join(context.system_properties["model_dir"], "model.pt")).eval()
        print(f"math threads: {torch.get_num_threads()}", flush=True)
        self.initialized = True

    def handle(self, data, context):
        arrays = [np.load(io.BytesIO(bytes(item.get("body") or item.get("data")))) for item in data]
        with torch.inference_mode():
            out = self.model(torch.from_numpy(np.concatenate(arrays).astype(np.float32))).numpy()
        answers, start = [], 0
        for index, array in enumerate(arrays):
            buffer = io.BytesIO()
            np.save(buffer, out[start:start + len(array)])
            start += len(array)
            context.set_response_content_type(index, "application/x-npy")
            answers.append(buffer.getvalue())
        return answers
'''


class TorchServe(Peer):
    """TorchServe 0.12: a ``.mar`` per model made by torch-model-archiver with the handler above
    (or ``handler``: the source of another). ``load(model, batch_size)`` registers it with
    TorchServe's own batching: up to ``batch_size`` requests merged, waiting up to
    ``max_batch_delay_ms`` for them (1, the default: none)."""

    label = "torchserve"
    many = False

    def __init__(self, workdir: Path, workers: int, venv: Path, handler: str = TORCHSERVE_HANDLER,
                 max_batch_delay_ms: int = 100):
        super().__init__(workdir, workers)
        self.venv = venv
        self.handler = handler
        self.max_batch_delay_ms = max_batch_delay_ms
        self.store = workdir / "store"
        self.store.mkdir(exist_ok=True)
        self.management = free_port()

    def command(self) -> list[str]:
        (self.workdir / "config.properties").write_text(
            f"inference_address=http://127.0.0.1:{self.port}\nmanagement_address=http://127.0.0.1:{self.management}\n"
            f"metrics_address=http://127.0.0.1:{free_port()}\ndefault_workers_per_model={self.workers}\n"
            "disable_token_authorization=true\nenable_model_api=true\ninstall_py_dep_per_model=false\n"
            "disable_system_metrics=true\n")
        return [str(self.venv / "bin" / "torchserve"), "--start", "--foreground", "--ncs",
                "--ts-config", str(self.workdir / "config.properties"), "--model-store", str(self.store),
                "--disable-token-auth", "--enable-model-api"]

    def env(self) -> dict:
        return {"PATH": f"{self.venv / 'bin'}:{os.environ['PATH']}"}

    def prepare(self, models: list[Model]) -> None:
        handler = self.workdir / "handler.py"
        handler.write_text(self.handler)
        for model in models:
            if not (self.store / f"{model.name}.mar").exists():
                subprocess.run([str(self.venv / "bin" / "torch-model-archiver"), "--model-name", model.name,
                                "--version", "1.0", "--serialized-file", str(model.canonical_file()),
                                "--handler", str(handler), "--export-path", str(self.store)], check=True)

    def load(self, model: Model, batch_size: int = 1) -> None:
        batch = {"batch_size": batch_size, "max_batch_delay": self.max_batch_delay_ms} if batch_size > 1 else {}
        response = self.client.post(self.url("/models", self.management), params={
            "url": f"{model.name}.mar", "model_name": model.name, "initial_workers": self.workers, "synchronous": "true",
            **batch})
        self.check(response, f"LoadModel {model.name}")

    def unload(self, name: str) -> None:
        self.check(self.client.delete(self.url(f"/models/{name}", self.management)), f"unload {name}")

    def path(self, name: str) -> str:
        return f"/predictions/{name}"
