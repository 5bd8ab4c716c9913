#!/usr/bin/env bash
# Every GPU check and benchmark of lrm-studio, in one call.
#
# How to run (on a machine with an NVIDIA GPU, CUDA build of torch installed, from the repo root):
#   bash scripts/gpu_checks.sh [OUT_DIR]
# On the lent device machine the repository root is the working directory and the project's
# wheels/virtual environment are carried along; set PYTHON to its interpreter if it is not
# `python` on PATH. gsplat JIT-compiles its CUDA kernels on first use (a few minutes; MAX_JOBS
# limits parallel compile jobs); later runs reuse ~/.cache/torch_extensions.
# Results (JSON) go to OUT_DIR (default: $OUT if set, else ./gpu-results). Sections are
# independent; the script stops at the first failure (set -e) so failures are not missed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python}"
OUT_DIR="${1:-${OUT:-gpu-results}}"
mkdir -p "$OUT_DIR"
export MAX_JOBS="${MAX_JOBS:-8}"

section() { echo; echo "=== $* ==="; }

section "environment"
"$PYTHON" - <<'PY'
import torch, gsplat
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
print("gsplat", gsplat.__version__)
assert torch.cuda.is_available(), "no CUDA device visible to torch"
print(torch.cuda.get_device_name(0))
PY

# --------------------------------------------------------------------------------- renderer
section "render: gsplat vs our CPU backend (pytest -m gpu)"
"$PYTHON" -m pytest -q -m gpu tests/test_render.py tests/test_render_grad.py

section "render: benchmark, gsplat timings and PSNR(gsplat, ours)"
"$PYTHON" -m studio.cli bench render --device cuda --json "$OUT_DIR/bench_render_cuda.json"
