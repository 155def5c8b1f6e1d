"""The SageMaker Python SDK tier: each SDK line in a venv of its own, driving a real local endpoint.

The SDK cannot share the dev venv (2.x needs ``protobuf<7``, TensorFlow 2.21 needs 7; 3.x also
needs ``rich<15``), so ``sdk_venv("v2")`` makes ``requirements/sdk-v2.txt``'s venv under
``tests/sdk/.venvs/`` (gitignored) with ``harness.venvs``, the peers benchmark's mechanism: only
the first run pays the install (measured with no pip cache on the 2-core machine: 41 s for 2.x,
98 s for 3.x; several minutes when the machine is busy). With both venvs made the tier takes
about 100 s. A driver script (``drive_v2.py``, ``drive_v3.py``) runs with that
venv's python against the local endpoint the test started, every boto3 client pointed at it by
``AWS_ENDPOINT_URL``; it prints one JSON line per flow, which the tests check against
predictions made here with the same models.
"""

import json
import os
import subprocess
from pathlib import Path

import joblib
import numpy as np

from harness import venvs
from harness.local_endpoint import LocalEndpointProcess
from models import data
from models.examples import pipeline, pytorch, sklearn, xgboost
from models.layout import archive

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".venvs"
MODELS = ("sklearn-iris", "xgboost-binary", "pytorch-mlp", "pipeline-preprocess", "pipeline-xgboost")


def sdk_venv(line: str) -> Path:
    return venvs.ensure(venvs.ROOT / "requirements" / f"sdk-{line}.txt", CACHE / line)


def python_of(venv: Path) -> Path:
    return venvs.python(venv)


def build_models(root: Path) -> dict[str, str]:
    """The example models the flows deploy, as ``model.tar.gz`` archives: name → local path."""
    for builder in (sklearn, xgboost, pytorch, pipeline):
        builder.build(root)
    return {name: str(archive(root, name)) for name in MODELS}


def rows() -> np.ndarray:
    return data.classification(seed=1)[0][:4]


def pipeline_rows() -> np.ndarray:
    X, _ = data.classification(rows=400, classes=2, seed=11)
    return (X * [1, 100, 0.01, 5] + [0, 50, 3, -7])[:4]


def iris_labels(root: Path) -> list[float]:
    return [float(v) for v in joblib.load(root / "sklearn-iris" / "model" / "model.joblib").predict(rows())]


def flat(answer) -> list[float]:
    """Numbers of a nested answer (lists of rows, CSV strings), in order."""
    if isinstance(answer, dict) and "predictions" in answer:
        answer = answer["predictions"]
    if isinstance(answer, list | tuple):
        return [number for item in answer for number in flat(item)]
    return [float(answer)]


def drive(driver: str, python: Path, local: LocalEndpointProcess, spec: dict, flows: list[str], work: Path,
          timeout: float = 900) -> dict[str, dict]:
    """Run ``driver`` with the SDK venv's python; its JSON line per flow, by flow name."""
    spec_path = work / f"{driver}.json"
    spec_path.write_text(json.dumps(spec))
    environment = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    environment.update(AWS_ENDPOINT_URL=local.url, AWS_DEFAULT_REGION="us-east-1",
                       AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local", PYTHONUNBUFFERED="1",
                       SAGEMAKER_SUPPRESS_V2_WARNING="1")
    done = subprocess.run([str(python), str(HERE / f"{driver}.py"), str(spec_path), *flows], env=environment,
                          cwd=work, capture_output=True, text=True, timeout=timeout)
    lines = {}
    for line in done.stdout.splitlines():
        if '{"flow"' in line:  # the SDK's progress dashes may precede it on the line
            parsed = json.loads(line[line.index('{"flow"'):])
            lines[parsed["flow"]] = parsed
    (work / f"{driver}.stdout").write_text(done.stdout)
    (work / f"{driver}.stderr").write_text(done.stderr)
    assert lines, f"{driver} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return lines


class KnownBug(AssertionError):
    """A flow failed the way a known local-endpoint bug makes it fail (for ``xfail(raises=KnownBug)``:
    any other failure still fails the test, and a pass is an XPASS that strict mode fails)."""


def result(lines: dict[str, dict], flow: str, known: tuple[str, ...] = ()) -> dict:
    """The flow's result, or a failure naming the SDK's error (the traceback is in the line);
    ``KnownBug`` when the error holds one of ``known``."""
    assert flow in lines, f"the driver printed nothing for {flow}"
    line = lines[flow]
    if "error" in line:
        message = f"{flow}: {line['error']}\n{line.get('traceback', '')[-2500:]}"
        if any(words in line["error"] for words in known):
            raise KnownBug(message)
        raise AssertionError(message)
    return line["result"]
