"""TensorFlow: a SavedModel or a Keras ``*.keras`` file, served as TF Serving's REST API answers.

One concern a module:

- ``savedmodel``: finding the model in its directory (``saved_model.pb`` at the root, under
  ``<version>/`` or ``<name>/<version>/``, or a ``*.keras`` file) and loading its signatures;
- ``rest``: TF Serving's REST request and response shapes (``{"instances": ...}`` answered
  ``{"predictions": ...}``, ``{"inputs": ...}`` answered ``{"outputs": ...}``);
- ``predict``: choosing the signature (``tfs-signature``, ``"signature_name"``) and feeding it;
- ``batching``: how row-format requests merge into one call (``handlers.batching``);
- ``bf16``: when BF16 fast math asks for TensorFlow's oneDNN bf16 rewrite.

This module holds ``FRAMEWORK`` and the worker's ``setup``. The front imports it to detect
models: what needs NumPy or TensorFlow is imported at its first call (``handlers.deferred``).
"""

import logging
import platform

from handlers.base import Framework
from handlers.batching.rows import BatchSpec
from handlers.deferred import deferred
from handlers.frameworks.tensorflow.bf16 import BF16_REWRITE, cpu_flags, wants_bf16_rewrite
from handlers.frameworks.tensorflow.savedmodel import find, load

log = logging.getLogger("handlers.frameworks.tensorflow")


def setup(threads: int, fpmath_mode: str | None = None) -> None:
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError as err:  # the runtime already started: keep its pools
        log.warning("TensorFlow thread pools already set: %s", err)
    if wants_bf16_rewrite(fpmath_mode or "", platform.machine(), cpu_flags()):
        tf.config.optimizer.set_experimental_options({BF16_REWRITE: True})


_MODULE = "handlers.frameworks.tensorflow"

# Measured: a SavedModel or .keras file takes 1.05-1.1x its size on disk once loaded (a 150 MB
# SavedModel: 159 MB) plus 3-7 MB of graph per model, whatever its size; a worker with
# TensorFlow imported is ~620 MB of RSS.
FRAMEWORK = Framework(
    name="tensorflow",
    find=find,
    load=load,
    predict=deferred(f"{_MODULE}.predict", "predict"),
    decode=deferred(f"{_MODULE}.rest", "decode"),
    encode=deferred(f"{_MODULE}.rest", "encode"),
    memory_factor=1.5,
    worker_bytes=650 * 2**20,
    imports=("tensorflow",),
    setup=setup,
    patterns=("saved_model.pb", "<name>/<version>/saved_model.pb", "*.keras"),
    batch=BatchSpec(
        rows=deferred(f"{_MODULE}.batching", "batch_rows"),
        merge=deferred(f"{_MODULE}.batching", "merge_requests"),
        split=deferred(f"{_MODULE}.batching", "split_result"),
    ),
)
