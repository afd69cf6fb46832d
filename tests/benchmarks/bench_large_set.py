"""Peak memory of a StyleAligned set sampled in batches (StyleAlignedSplitSet) against one big batch.

    python tests/benchmarks/bench_large_set.py                      # 12 images: one batch vs batches of 4
    python tests/benchmarks/bench_large_set.py --images-per-batch 0 2 4 6 --latent 64 --repeats 3

Each variant runs in a fresh child process: a tiny random SD1.5-layout UNet (tests/host/tiny_models.py),
StyleAlignedPatch, the stock KSampler node (euler, cfg 3: cond and uncond in one model call; PyTorch SDPA
attention) on a latent
batch of `--images` images, through the split and gather nodes when images_per_batch > 0. What is measured
is the peak above the memory held just before sampling:
- CPU: the process's peak resident set (Linux VmHWM, reset through /proc/self/clear_refs) minus its resident
  set before sampling;
- CUDA (when torch sees a GPU and --device cuda): torch.cuda.max_memory_allocated minus memory_allocated
  before sampling.
It also prints the sampling wall time (the reference is sampled again in every batch, so batches cost time).
A benchmark, not a test: it prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parents[1]


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def run_variant(images: int, images_per_batch: int, latent_size: int, steps: int, device_name: str) -> dict:
    """In this (fresh) process: sample the set once, return the peak memory above the start and the time."""
    sys.path.insert(0, str(TESTS_DIR))
    import torch

    from host.comfy_env import _put_host_first_on_path, comfyui_path, host_node_class, load_host

    _put_host_first_on_path(comfyui_path())
    import comfy.options

    comfy.options.enable_args_parsing(False)
    import comfy.cli_args

    comfy.cli_args.args.cpu = device_name == "cpu"
    # PyTorch SDPA attention on both devices: on the CPU the host would pick sub-quadratic attention, which
    # sizes its slices by the free memory, so its peak follows the machine rather than the batch.
    comfy.cli_args.args.use_pytorch_cross_attention = True
    import comfy.model_management  # noqa: F401  (device state fixed here, before load_host)
    from host.sampling import node_output, style_aligned
    from host.tiny_models import tiny_conditioning, tiny_model

    load_host()
    torch.set_num_threads(1)
    model = tiny_model("sd15")
    device = torch.device(device_name)
    if device.type == "cuda":
        import comfy.model_patcher

        model = comfy.model_patcher.ModelPatcher(model.model, load_device=device, offload_device=torch.device("cpu"))
    patched = style_aligned(model)
    positive, negative = tiny_conditioning("sd15", batch=images, seed=3), tiny_conditioning("sd15", seed=4)
    latent = {"samples": torch.zeros(images, 4, latent_size, latent_size)}
    ksampler = host_node_class("KSampler")()

    def sample(pos, neg, lat):
        return ksampler.sample(patched, 1, steps, 3.0, "euler", "normal", pos, neg, lat)[0]["samples"]

    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    else:
        Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS
        before = _status_kib("VmRSS") * 1024
    start = time.perf_counter()
    if images_per_batch == 0:
        result = sample(positive, negative, latent)
        batches = 1
    else:
        positives, negatives, latents, plan = node_output(
            "StyleAlignedSplitSet", positive=positive, negative=negative, latent=latent, reference_index=0,
            images_per_batch=images_per_batch).result
        samples = [sample(p, n, lat) for p, n, lat in zip(positives, negatives, latents)]
        result = host_node_class("StyleAlignedGatherSet").execute(images=samples, set_chunks=[plan]).result[0]
        batches = len(plan.chunks)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - before
    else:
        peak = _status_kib("VmHWM") * 1024 - before
    seconds = time.perf_counter() - start
    assert result.shape[0] == images
    return {"images_per_batch": images_per_batch, "batches": batches, "peak_bytes": peak, "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--images-per-batch", type=int, nargs="+", default=[0, 4], help="0 = one batch")
    parser.add_argument("--latent", type=int, default=32, help="latent width/height (×8 pixels)")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each variant, interleaved; the median is shown")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)

    if options.child:
        (images_per_batch,) = options.images_per_batch
        print(json.dumps(run_variant(options.images, images_per_batch, options.latent, options.steps, options.device)))
        return 0

    runs: dict[int, list[dict]] = {k: [] for k in options.images_per_batch}
    for _ in range(options.repeats):
        for images_per_batch in options.images_per_batch:
            child = subprocess.run(
                [sys.executable, __file__, "--child", "--images", str(options.images), "--images-per-batch",
                 str(images_per_batch), "--latent", str(options.latent), "--steps", str(options.steps),
                 "--device", options.device],
                capture_output=True, text=True, check=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
            runs[images_per_batch].append(json.loads(child.stdout.strip().splitlines()[-1]))

    print(f"{options.images} images, tiny SD1.5-layout UNet, latent {options.latent}×{options.latent} "
          f"({options.latent * 8} px), {options.steps} euler steps, cfg 3, {options.device}, "
          f"median of {options.repeats} fresh processes")
    print(f"{'images_per_batch':>16} {'batches':>8} {'peak above start':>17} {'vs one batch':>13} {'time':>8}")
    baseline = statistics.median(run["peak_bytes"] for run in runs.get(0, [])) if 0 in runs else None
    for images_per_batch, measured in runs.items():
        peak = statistics.median(run["peak_bytes"] for run in measured)
        seconds = statistics.median(run["seconds"] for run in measured)
        ratio = f"{peak / baseline:.2f}×" if baseline else "-"
        label = "0 (one batch)" if images_per_batch == 0 else str(images_per_batch)
        print(f"{label:>16} {measured[0]['batches']:>8} {peak / 2**20:>13.1f} MiB {ratio:>13} {seconds:>7.2f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
