"""PyTorch: TorchScript as ``model.pt``, else the one ``*.pt`` / ``*.pth`` file in the directory.

Like the AWS PyTorch container, only TorchScript loads without user code: a pickled eager
``nn.Module`` or a ``state_dict`` needs the class that built it, which only the user's
``model_fn`` in ``code/inference.py`` has. Such a file is refused at load with a message saying so.

Inputs become float32 tensors (the dtype of almost every exported network; JSON and CSV carry no
dtype of their own). A model that takes integer tensors (token ids for an embedding, say) needs an
``input_fn`` or ``predict_fn``. A JSON object or NPZ of several arrays is passed as keyword
tensors. Outputs: a tensor becomes an array; a tuple or list of tensors a list of arrays; a dict of
tensors a dict of arrays (several outputs are encoded as ``handlers.codecs.encode_outputs`` describes).
"""

import zipfile
from pathlib import Path

import numpy as np

from handlers.base import Framework, outputs_encode, single_file
from handlers.errors import BadInput, ModelLoadError, short

SUFFIXES = (".pt", ".pth")

EAGER_HINT = (
    "eager nn.Modules (a pickled module or a state_dict) need a model_fn in code/inference.py; "
    "or save the model as TorchScript with torch.jit.script(model).save('model.pt')"
)


def find(model_dir: Path) -> Path | None:
    return single_file(model_dir, "model.pt", SUFFIXES, "PyTorch")


def _looks_like_checkpoint(artifact: Path) -> bool:
    """A ``torch.save`` file rather than TorchScript: legacy pickle, or a zip without TorchScript code."""
    try:
        with open(artifact, "rb") as file:
            if file.read(1) == b"\x80":
                return True
        with zipfile.ZipFile(artifact) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False
    return not any(name.endswith("constants.pkl") or "/code/" in name for name in names)


def load(artifact: Path):
    import torch

    try:
        model = torch.jit.load(str(artifact), map_location="cpu")
    except (RuntimeError, ValueError) as err:
        if _looks_like_checkpoint(artifact):
            raise ModelLoadError(f"{artifact.name} is not TorchScript; {EAGER_HINT}") from None
        raise ModelLoadError(f"{artifact.name} cannot be loaded as TorchScript ({short(err)}); {EAGER_HINT}") from None
    return model.eval()


def setup(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    try:
        # Requests already run on the worker's own threads: one inter-op thread per process.
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # already set, or parallel work already started: it can only be set once


def _tensor(torch, value, name: str | None = None):
    array = np.asarray(value)
    try:
        array = array.astype(np.float32, copy=False)
    except (ValueError, TypeError):
        what = f"input {name!r}" if name else "the input"
        raise BadInput(f"{what} must be numbers; got {array.dtype} values") from None
    if not array.flags.writeable:
        array = array.copy()  # from_numpy warns on read-only buffers (NPY bodies are)
    return torch.from_numpy(array)


def _numpy(value):
    """Tensors in an output (possibly nested in a tuple, list or dict) to arrays."""
    if hasattr(value, "detach") and hasattr(value, "numpy"):
        return value.detach().cpu().numpy()
    if isinstance(value, dict):
        return {key: _numpy(item) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return [_numpy(item) for item in value]
    return value


def predict(model, data, context=None):
    import torch

    with torch.inference_mode():
        try:
            if isinstance(data, dict):
                output = model(**{name: _tensor(torch, value, name) for name, value in data.items()})
            else:
                output = model(_tensor(torch, data))
        except (RuntimeError, ValueError, TypeError, IndexError) as err:
            # TorchScript raises shape, dtype and argument mismatches as RuntimeError.
            raise BadInput(f"the model cannot run on this input: {short(err)}") from None
        return _numpy(output)


FRAMEWORK = Framework(
    name="pytorch",
    find=find,
    load=load,
    predict=predict,
    encode=outputs_encode,
    # Measured: a 64 MB TorchScript file took 64 MB of RSS loaded, 71 MB after its first
    # request (weights once, plus the graph executor's state and activations).
    memory_factor=1.5,
    # Measured: a worker after ``import torch`` (2.13, CPU build) holds about 230 MB RSS.
    worker_bytes=240 * 2**20,
    imports=("torch",),
    setup=setup,
    patterns=("model.pt", "*.pt", "*.pth"),
)
