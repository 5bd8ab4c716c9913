#!/usr/bin/env bash
# Every GPU check and benchmark in one call. Run from the repository root on a CUDA machine:
#   bash scripts/gpu_checks.sh            (results as JSON under ${OUT_DIR:-gpu-results}/)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OUT=${OUT_DIR:-gpu-results}
mkdir -p "$OUT"
$PY -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0))"

# ---------------------------------------------------------------- GeoLRM
# CUDA vs CPU agreement (deformable sampling, tiny network, bf16 runs)
$PY -m pytest -q -m gpu tests/test_geolrm_gpu.py
# target (issue [geolrm]): 21 views, 16384 anchors, <= 6 GB peak and <= 0.5 s on an H100
for prec in fp32 tf32 bf16; do
  $PY -m studio.cli bench geolrm --views 6,12,21 --anchors 16384 --precision "$prec" \
    --json "$OUT/geolrm_${prec}.json"
done
# the paper's 21-view setting used SV3D frames at 560 px; the paper-style global attention
$PY -m studio.cli bench geolrm --views 21 --anchors 16384 --precision bf16 --image-size 560 \
  --json "$OUT/geolrm_bf16_560.json"
$PY -m studio.cli bench geolrm --views 21 --anchors 16384 --precision bf16 --attention global \
  --json "$OUT/geolrm_bf16_global.json"
