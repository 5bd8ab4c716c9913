#!/usr/bin/env bash
# Every GPU check and benchmark of lrm-studio, in one call, from the repository root on a CUDA
# machine:  bash scripts/gpu_checks.sh      (results under ${RESULTS:-gpu_results}/)
# Each area appends its own section below. Nothing here downloads anything.
set -euo pipefail

PY="${PYTHON:-python}"
RESULTS="${RESULTS:-gpu_results}"
mkdir -p "$RESULTS"
"$PY" - <<'PYEOF'
import torch
assert torch.cuda.is_available(), "gpu_checks.sh needs CUDA"
print("device:", torch.cuda.get_device_name(0), "torch", torch.__version__, "cuda", torch.version.cuda)
PYEOF

# ------------------------------------------------------------------------------------- Long-LRM
# The fused Mamba2 scan needs mamba-ssm (>= 2.2; its SSD kernels are Triton) and causal-conv1d
# (compiled CUDA), built for this machine's torch / CUDA / Python. A device without internet
# cannot pip-install them: carry wheels built for it into ${WHEELS:-wheels}/ (mamba_ssm-*.whl,
# causal_conv1d-*.whl; prebuilt ones are on the GitHub releases of state-spaces/mamba and
# Dao-AILab/causal-conv1d) and they are installed from there. Without them the checks still run
# on the PyTorch scan and the fused-vs-torch tests are skipped (pytest says so).
WHEELS="${WHEELS:-wheels}"
if compgen -G "$WHEELS/causal_conv1d-*.whl" >/dev/null && compgen -G "$WHEELS/mamba_ssm-*.whl" >/dev/null; then
  "$PY" -m pip install --no-index --no-deps "$WHEELS"/causal_conv1d-*.whl "$WHEELS"/mamba_ssm-*.whl
fi
"$PY" -c "from pipelines.models.blocks.mamba2 import mamba_ssm_available as a; print('fused Mamba2 scan:', a('cuda'))"

# fused kernel vs PyTorch scan (bf16 relative error < 1e-2), CUDA bf16 vs CPU fp32, memory bound
"$PY" -m pytest -q -rs -m gpu tests/test_mamba2.py tests/test_long_lrm_gpu.py 2>&1 | tee "$RESULTS/long_lrm_gpu_tests.txt"

# target: 32 views at 960x544, images in -> pruned Gaussians out, <= 0.5 s and <= 24 GB on an H100
"$PY" -m studio.cli bench long-lrm --preset official-540p --views 4,8,16,32 --height 544 --width 960 \
  --baseline-transformer --json "$RESULTS/bench_long_lrm.json" 2>&1 | tee "$RESULTS/bench_long_lrm.txt"
# the same with the PyTorch scan (the fallback when mamba-ssm is absent)
"$PY" -m studio.cli bench long-lrm --preset official-540p --views 4,8,16,32 --height 544 --width 960 \
  --backend torch --repeats 3 --json "$RESULTS/bench_long_lrm_torch_scan.json" 2>&1 | tee "$RESULTS/bench_long_lrm_torch_scan.txt"
