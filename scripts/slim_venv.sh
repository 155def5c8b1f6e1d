#!/bin/sh
# Drop from an image's venv what the server never imports at run time:
#
#   sh scripts/slim_venv.sh VENV          (the Dockerfiles' build stage, after scripts/install.sh)
#
# - the packages' own test suites (directories named tests: pandas, scipy, numpy, sklearn ...);
# - C/C++ headers of torch and TensorFlow (for compiling extensions, not for running them);
# - static libraries (*.a), linked by nobody at run time;
# - libclang's shared library: TensorFlow lists libclang for its build tooling, never loads it.
# Package metadata stays, so `pip check` and `pip install` in the image still see every pin.
# The image's import check and `make image-test` run what is left.
set -eu
site=$(echo "$1"/lib/python3*/site-packages)
test -d "$site" || { echo "$0: no site-packages under $1" >&2; exit 2; }
before=$(du -sm "$1" | cut -f1)
find "$site" -depth -type d -name tests -exec rm -rf {} +
find "$site" -type f -name '*.a' -delete
rm -rf "$site/torch/include" "$site/tensorflow/include" "$site/clang/native"
echo "slim_venv.sh: $before MB -> $(du -sm "$1" | cut -f1) MB"
