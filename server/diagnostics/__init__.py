"""The acceleration report: what math each framework really does on this CPU.

``python -m server accel-report`` prints, as JSON, per framework (PyTorch, TensorFlow, ONNX
Runtime; XGBoost and scikit-learn by version only): its version, the architecture, whether the
CPU has bf16 instructions, whether oneDNN and the Arm Compute Library are there, the fpmath mode
the workers get, and for each operation a served model runs (``linear``, ``matmul``, ``conv``)
the kernel oneDNN ran it on and its error against float64; then a verdict on whether BF16
fast-math is active. With ``MODEL_SERVER_ACCEL_REPORT=true`` (the images' default) the server
logs the same report as one line at start.

Why measure rather than read the setting: ``DNNL_DEFAULT_FPMATH_MODE=BF16`` puts
``attr-fpmath:bf16`` on oneDNN's kernels on any CPU, also where the kernel chosen ignores it
(x86 without AMX, ``brg:sve_512`` on 512-bit SVE) or where the framework does not call oneDNN at
all (MKL or OpenBLAS sgemm, oneDNN's sgemm API, ONNX Runtime's MLAS). So the verdict of each
operation follows the kernel seen in oneDNN's verbose log and the error: about 1e-7 is fp32
arithmetic, about 1e-3 is bf16 (8 significant bits instead of 24). Never the variable.

Each framework is probed in a child process (``python -m server.diagnostics.probes NAME THREADS
FILE``) with ``ONEDNN_VERBOSE=1`` and the environment the workers get. The child does what a
worker does: imports the framework, calls its handler's ``setup`` (which turns BF16 fast-math on
or off), saves tiny models in the framework's served format, loads them with the handler's
``load`` and runs them through its ``predict``. Nothing heavy is imported by the caller, and
oneDNN's verbose lines, printed on the child's stdout between markers naming each operation,
are read back.

The modules, by job: ``cpu`` (what the CPU offers), ``onednn`` (oneDNN's verbose log read back
and judged), ``onnx_encoding`` (tiny ONNX models encoded by hand), ``probes`` (the child that
serves the operations), ``report`` (the parent: probes run, verdict, the CLI). The front's
start-up line is ``server.front.accel_log``, which only runs the CLI in a child.
"""
