"""PyTorch: TorchScript as ``model.pt``, else the one ``*.pt`` / ``*.pth`` file in the directory.

Like the AWS PyTorch container, only TorchScript loads without user code: a pickled eager
``nn.Module`` or a ``state_dict`` needs the class that built it, which only the user's
``model_fn`` in ``code/inference.py`` has. Such a file is refused at load with a message saying so.

Inputs become float32 tensors (the dtype of almost every exported network; JSON and CSV carry no
dtype of their own). A model that takes integer tensors (token ids for an embedding, say) needs an
``input_fn`` or ``predict_fn``. A JSON object or NPZ of several arrays is passed as keyword
tensors. Outputs: a tensor becomes an array; a tuple or list of tensors a list of arrays; a dict of
tensors a dict of arrays (several outputs are encoded as ``handlers.codecs.encode.encode_outputs`` describes).
"""

import contextlib
import platform
import zipfile
from pathlib import Path

from handlers.base import Framework, outputs_encode, single_file
from handlers.batching import rows
from handlers.describe import short
from handlers.errors import BadInput, ModelLoadError

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


# How this worker runs fp32 GEMMs and convolutions, chosen once by ``setup``: "fp32";
# "onednn-fpmath-bf16" (oneDNN may compute them in bf16); "autocast-bf16" (they run on bf16 data).
fastmath = "fp32"


def setup(threads: int, fpmath_mode: str | None = None) -> None:
    import torch

    global fastmath
    torch.set_num_threads(threads)
    try:
        # Requests already run on the worker's own threads: one inter-op thread per process.
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # already set, or parallel work already started: it can only be set once
    fastmath = bf16_fastmath(torch, fpmath_mode or "", platform.machine())


def bf16_fastmath(torch, mode: str, machine: str) -> str:
    """Switch fp32 GEMMs and convolutions to bf16 when ``mode`` is BF16; return how (``fastmath``).

    ``torch.backends.mkldnn.{matmul,conv}.fp32_precision = "bf16"`` sends fp32 ``nn.Linear``,
    ``torch.matmul`` and convolutions through oneDNN with the bf16 fpmath attribute (without it
    linear and matmul go to MKL's or OpenBLAS's sgemm, which never reads any fpmath setting).
    oneDNN then really computes in bf16 only on some CPUs: with the Arm Compute Library on
    Graviton3/4 (``gemm:acl``) and with AMX on x86. On an x86 CPU with AVX512-BF16 and no AMX
    (AMD Zen 4/5, Intel Cooper Lake) it keeps its fp32 kernels (measured: ``brg_matmul:avx512_core``,
    fp32 error), so there ``predict`` runs the model under ``torch.autocast(bfloat16)``: the
    GEMMs and convolutions get bf16 operands and run on oneDNN's ``avx512_core_bf16`` kernels.
    Autocast is also what pays on AMX. Outputs are handed back as float32.
    """
    if mode.strip().upper() != "BF16":
        return "fp32"
    torch.backends.mkldnn.matmul.fp32_precision = "bf16"
    torch.backends.mkldnn.conv.fp32_precision = "bf16"
    if machine.lower() in ("x86_64", "amd64") and (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()):
        return "autocast-bf16"
    return "onednn-fpmath-bf16"


def _precision(torch):
    """The context a request's forward pass runs in: bf16 autocast when ``setup`` chose it."""
    if fastmath == "autocast-bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _tensor(torch, value, name: str | None = None):
    import numpy as np

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
        value = value.detach().cpu()
        return (value.float() if str(value.dtype) == "torch.bfloat16" else value).numpy()  # numpy has no bf16
    if isinstance(value, dict):
        return {key: _numpy(item) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return [_numpy(item) for item in value]
    return value


def predict(model, data, context=None):
    import torch

    with torch.inference_mode(), _precision(torch):
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
    # Axis 0 is the batch, by PyTorch's convention; a bare 1-D input is answered without one, so
    # it is predicted alone. A model that mixes rows shows it by a prediction without them.
    batch=rows.BatchSpec(rows=lambda model, data, context: rows.arrays(data, min_ndim=2)),
)
