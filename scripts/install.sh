#!/bin/sh
# The one install step: a virtualenv at VENV holding exactly the pins of REQUIREMENTS.
#
#   sh scripts/install.sh VENV REQUIREMENTS [extra pip options...]
#
# Both Dockerfiles run it with requirements/runtime.txt (and --no-cache-dir); `make setup`, and
# so CI, runs it with requirements/dev.txt (runtime.txt plus test tools). A broken pin, a
# package with no wheel, or a CUDA build of torch therefore fails CI the way it would fail an
# image build.
#
# Environment:
#   PYTHON           interpreter that creates the venv when VENV has none (default: python3)
#   TORCH_INDEX_URL  PyTorch's CPU-only wheel index, added as an extra index (the Dockerfiles'
#                    default is https://download.pytorch.org/whl/cpu). PyPI's x86_64 torch wheels
#                    are CUDA builds; with this index added, pip prefers its `+cpu` build of the
#                    same pinned version. Empty: no extra index (pip's own configuration then
#                    has to supply a CPU torch, as a mirror or local wheels would).
set -eu

if [ "$#" -lt 2 ]; then
    echo "usage: $0 VENV REQUIREMENTS [pip options...]" >&2
    exit 2
fi
venv=$1
requirements=$2
shift 2

if [ ! -f "$requirements" ]; then
    echo "$0: no requirements file $requirements" >&2
    exit 2
fi
if [ -n "${TORCH_INDEX_URL:-}" ]; then
    set -- --extra-index-url "$TORCH_INDEX_URL" "$@"
fi

if [ ! -x "$venv/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$venv"
fi

# pip itself at the pin of requirements/runtime.txt before anything else, so that every install
# (an image on any base, CI, a laptop) resolves with the same pip, not whichever one the base's
# Python bundles.
pin=$(grep -E '^pip==' "$(dirname "$0")/../requirements/runtime.txt" | sed 's/[[:space:]].*//')
"$venv/bin/python" -m pip install --disable-pip-version-check --only-binary=:all: "$@" "$pin"

# Wheels only, so that no install (image, CI, laptop) ever needs a compiler. The one exception is
# sagemaker-inference, which PyPI publishes only as source: it is pure Python and builds with
# setuptools alone (scripts/check_resolution.py checks that it stays so).
"$venv/bin/python" -m pip install --disable-pip-version-check \
    --only-binary=:all: --no-binary=sagemaker-inference \
    "$@" -r "$requirements"

"$venv/bin/python" -m pip check --disable-pip-version-check

# A CUDA torch (and the several GB of nvidia-* wheels it brings) where PyTorch's CPU index was
# given means the index did not supply torch: refused, the images are CPU-only. Without the
# index (the test venv; a build here whose local sources hold no x86 CPU torchvision) pip's
# sources decide: PyPI's x86_64 torch is a CUDA build, which runs on the CPU too; said, not refused.
"$venv/bin/python" - "${TORCH_INDEX_URL:-}" <<'EOF'
import sys
from importlib import metadata

cuda = sorted(
    d.metadata["Name"] for d in metadata.distributions()
    if d.metadata["Name"].lower().startswith(("nvidia-", "nvidia_", "cuda-", "cuda_", "triton"))
)
if cuda and sys.argv[1]:
    sys.exit(
        "install.sh: a CUDA build of torch was installed although TORCH_INDEX_URL is set (it brought "
        + ", ".join(cuda) + "); TORCH_INDEX_URL must be PyTorch's CPU wheel index (docs/images.md)"
    )
if cuda:
    print(f"install.sh: torch is a CUDA build ({len(cuda)} nvidia/cuda packages); "
          "set TORCH_INDEX_URL to PyTorch's CPU wheel index for a CPU-only venv", file=sys.stderr)
EOF
