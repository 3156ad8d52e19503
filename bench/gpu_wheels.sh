#!/usr/bin/env bash
# Wheels that the lent GPU machine lacks for bench/render_gpu.py, fetched here into .whl/
# (git-ignored) so that one device call can install them offline. That machine's image has
# Python 3.12 with CUDA torch, transformers, accelerate, safetensors, tokenizers, scipy and
# numpy; it has no diffusers, torchsde or soundfile, and no network.
#
#   bench/gpu_wheels.sh            # ~8 MB into .whl/
#
# Then, on the device (one call; the tool's `carry` names .whl):
#   python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \
#     && export PYTHONPATH=/tmp/site && python3 bench/render_gpu.py --device cuda --size full ...
set -euo pipefail
cd "$(dirname "$0")/.."
python_version="${GPU_PYTHON_VERSION:-3.12}"
rm -rf .whl && mkdir -p .whl
# Pinned to what the CPU venv runs and the tests cover; --no-deps, so every missing need is named.
python3 -m pip download -q --no-deps --only-binary=:all: \
    --python-version "$python_version" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux_2_24_x86_64 --platform manylinux1_x86_64 -d .whl \
    diffusers==0.42.1 importlib_metadata torchsde==0.2.6 trampoline==0.1.2 \
    soundfile==0.14.0 cffi==2.1.1 pycparser soxr==1.1.0
ls -1 .whl
du -sh .whl
