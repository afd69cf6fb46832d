#!/usr/bin/env bash
# One GPU run for issue 5 (H100 or H200): what is installed, the fused Triton kernels against the torch
# path on CUDA, then the benchmark (SD1.5 512^2 ref+4, SDXL 1024^2 ref+1 and ref+4, float16).
#
#   bash tests/benchmarks/gpu_check.sh            # from the repository root; ~3-5 minutes
#
# Needs torch with CUDA (Triton optional: without it the pack runs its torch path and says so) and the
# ComfyUI host at .cache/comfyui-0.3.75 (carry it) or COMFYUI_PATH. Writes logs to $OUT (default
# /tmp/stylealigned-gpu-check): summary.txt, env.txt, nvidia-smi.txt, check_fused.jsonl, bench.log, bench.json.
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/stylealigned-gpu-check}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
command -v "$PY" >/dev/null 2>&1 || PY=python
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PYTHONWARNINGS=ignore
export TRITON_CACHE_DIR=${TRITON_CACHE_DIR:-/tmp/stylealigned-triton-cache}
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
say() { echo "[gpu_check $(date +%H:%M:%S)] $*" | tee -a "$SUMMARY"; }
START=$(date +%s)

say "0/3 machine and packages"
{ nvidia-smi 2>&1 || echo "nvidia-smi not available"
  nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm,power.draw,temperature.gpu --format=csv 2>&1
} | tee "$OUT/nvidia-smi.txt"
"$PY" - <<'EOF' 2>&1 | tee "$OUT/env.txt"
import importlib, platform, sys
print("python", sys.version.split()[0], "|", platform.platform())
for name in ("torch", "triton", "numpy", "einops", "safetensors", "psutil", "yaml", "PIL", "transformers",
             "tokenizers", "tqdm", "scipy", "torchvision"):
    try:
        module = importlib.import_module(name)
        print(f"  {name:13s} {getattr(module, '__version__', '?')}")
    except Exception as exc:
        print(f"  {name:13s} MISSING ({type(exc).__name__}: {exc})")
try:
    import torch
    ok = torch.cuda.is_available()
    print("cuda available:", ok, "| torch.version.cuda", torch.version.cuda,
          "|", torch.cuda.get_device_name(0) if ok else "-")
except Exception as exc:
    print("torch unusable:", exc)
EOF
if ! "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  say "torch with CUDA is not available here: nothing to measure (see env.txt)"
  exit 2
fi
HOST_OK=1
if [ -z "${COMFYUI_PATH:-}" ] && [ ! -f .cache/comfyui-0.3.75/comfy/model_patcher.py ]; then
  HOST_OK=0
  say "ComfyUI host missing: carry .cache/comfyui-0.3.75 (or set COMFYUI_PATH); the benchmark is skipped"
fi

say "1/3 fused Triton kernels vs torch path on CUDA (fp32, fp16, bf16; odd sizes, 1-token maps, constant features, UNet shapes)"
timeout 150 "$PY" tests/benchmarks/check_fused.py --device cuda >"$OUT/check_fused.jsonl" 2>"$OUT/check_fused.err"
CHECK_RC=$?
PASSED=$(grep -c '"ok": true' "$OUT/check_fused.jsonl")
FAILED=$(grep -c '"ok": false' "$OUT/check_fused.jsonl")
say "check_fused exit $CHECK_RC: $PASSED cases equal, $FAILED differ"
grep -v '"ok": true' "$OUT/check_fused.jsonl" | head -20 | tee -a "$SUMMARY"
tail -5 "$OUT/check_fused.err" | tee -a "$SUMMARY"

if [ "$HOST_OK" = 1 ]; then
  say "2/3 benchmark: interleaved, median of 20, float16 (unpatched | pack | pack-eager | straightforward | floor)"
  timeout 300 "$PY" tests/benchmarks/bench_shared_attention.py --device cuda --repeats 20 --warmup 3 --layers \
    --json "$OUT/bench.json" 2>&1 | grep -v "^USDT" | tee "$OUT/bench.log"
  BENCH_RC=${PIPESTATUS[0]}
  say "benchmark exit $BENCH_RC"
fi

say "3/3 summary ($(( $(date +%s) - START )) s)"
{
  echo "device: $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)"
  echo "kernel equality: $PASSED equal, $FAILED differ (exit $CHECK_RC)"
  if [ -f "$OUT/bench.log" ]; then
    grep -E "^# (device|fused|pack vs)" "$OUT/bench.log"
    echo "patch maths alone, per self-attention input shape (GPU time per call):"
    grep -E "^layer " "$OUT/bench.log"
    grep -E "^\|" "$OUT/bench.log"
    echo "per-config lines (ms, ratio vs unpatched, peak memory):"
    grep -E "^(sd15|sdxl)-" "$OUT/bench.log"
  fi
} | tee -a "$SUMMARY"
