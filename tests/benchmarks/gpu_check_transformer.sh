#!/usr/bin/env bash
# One GPU run for issues 9 and 10: the transformer route on the Flux.1-dev, Qwen-Image and Z-Image
# architectures (random weights, bf16, 1024^2, reference + 3, one forward): unpatched, the pack, the floor
# (Flux also the straightforward maths, its output compared with the pack's first), peak memory.
# ~8-10 minutes on an H100/H200, plus ~4 for Wan video (issue 17).
#
#   bash tests/benchmarks/gpu_check_transformer.sh     # from the repository root
#   PARTS=wan bash tests/benchmarks/gpu_check_transformer.sh   # only some parts: flux, qwen-z, wan
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
PARTS=${PARTS:-flux qwen-z wan}
nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm --format=csv 2>&1 | tee "$OUT/nvidia-smi.txt"
[[ " $PARTS " == *" flux "* ]] && timeout 540 "$PY" tests/benchmarks/bench_transformer_attention.py --device cuda --repeats 10 \
    --configs flux-dev-1024-ref3 \
    --variants unpatched,pack,floor,straightforward --json "$OUT/bench.json" 2>&1 \
    | grep -v "torchaudio" | tee "$OUT/bench.log"
# Issue 10: Qwen-Image (20B) and Z-Image (6B) at real sizes, one process each (~2-3 minutes each).
[[ " $PARTS " == *" qwen-z "* ]] && for config in qwen-image-1024-ref3 z-image-1024-ref3; do
    timeout 300 "$PY" tests/benchmarks/bench_transformer_attention.py --device cuda --repeats 10 \
        --configs "$config" --variants unpatched,pack,floor --json "$OUT/bench-$config.json" 2>&1 \
        | grep -v "torchaudio" | tee "$OUT/bench-$config.log"
done
# Issue 17: Wan video, a reference clip + 3 at real sizes (Wan 2.1 14B / 2.2 A14B expert on 480x832x33,
# Wan 2.2 5B on 704x1280x41): unpatched, all frames, matching frames; ~2 minutes each.
[[ " $PARTS " == *" wan "* ]] && for config in wan-a14b-480p-33f-ref3 wan22-5b-704p-41f-ref3; do
    timeout 300 "$PY" tests/benchmarks/bench_wan_video.py --device cuda --repeats 5 \
        --configs "$config" --json "$OUT/bench-$config.json" 2>&1 \
        | grep -v "torchaudio" | tee "$OUT/bench-$config.log"
done
exit 0
