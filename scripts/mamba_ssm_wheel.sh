#!/usr/bin/env bash
# Build a pure-Python mamba-ssm wheel (its Triton kernels, none of its CUDA extensions) into
# ${WHEELS:-.whl}/, for a GPU machine that cannot reach PyPI: scripts/gpu_checks.sh installs it
# from there, and `lrm-studio bench long-lrm --backend torch,triton,mamba_ssm` then times
# mamba-ssm's Triton SSD scan beside ours. Run it with this project's venv active, on any machine
# (CPU torch is enough: MAMBA_SKIP_CUDA_BUILD skips nvcc; the build imports torch, setuptools and
# wheel from the venv); it needs PyPI for the source archive. The wheel is py3-none-any.
#   bash scripts/mamba_ssm_wheel.sh [VERSION]      (default 2.3.2.post1)
# Without causal-conv1d on the GPU machine, the mamba_ssm backend runs a PyTorch conv, then
# mamba-ssm's Triton chunk scan and gated norm (pipelines/models/blocks/mamba2.py, _scan_mamba_ssm).
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=${1:-2.3.2.post1}
OUT=${WHEELS:-.whl}
PY=${PYTHON:-python}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
export MAMBA_SKIP_CUDA_BUILD=TRUE MAMBA_FORCE_BUILD=TRUE  # no nvcc, no prebuilt-wheel download
$PY -m pip download --no-deps --no-binary :all: --no-build-isolation "mamba-ssm==$VERSION" -d "$TMP"
mkdir -p "$OUT"
$PY -m pip wheel --no-deps --no-build-isolation "$TMP"/mamba_ssm-*.tar.gz -w "$OUT"
ls -l "$OUT"/mamba_ssm-*.whl
