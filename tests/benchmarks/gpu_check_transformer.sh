#!/usr/bin/env bash
# One GPU run for issue 9: the transformer route on the Flux.1-dev architecture (random weights, bf16,
# 1024^2, reference + 3, one forward): unpatched, the pack, the floor and the straightforward maths
# (its output is compared with the pack's first), peak memory. ~3-5 minutes on an H100/H200.
#
#   bash tests/benchmarks/gpu_check_transformer.sh     # from the repository root
#
# Needs torch with CUDA and the ComfyUI host at .cache/comfyui-0.3.75 (carry it) or COMFYUI_PATH.
# Writes $OUT (default /tmp/stylealigned-gpu-check-transformer): nvidia-smi.txt, bench.log, bench.json.
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/stylealigned-gpu-check-transformer}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
command -v "$PY" >/dev/null 2>&1 || PY=python
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PYTHONWARNINGS=ignore
nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm --format=csv 2>&1 | tee "$OUT/nvidia-smi.txt"
timeout 540 "$PY" tests/benchmarks/bench_transformer_attention.py --device cuda --repeats 10 \
    --variants unpatched,pack,floor,straightforward --json "$OUT/bench.json" 2>&1 \
    | grep -v "torchaudio" | tee "$OUT/bench.log"
