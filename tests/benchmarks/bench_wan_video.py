"""Cost of StyleAligned on Wan video: one forward of a reference clip + 3 target clips, patched vs unpatched.

    python tests/benchmarks/bench_wan_video.py                      # CUDA if available, else CPU
    python tests/benchmarks/bench_wan_video.py --device cpu --repeats 5
    python tests/benchmarks/bench_wan_video.py --device cuda --configs wan-a14b-480p-33f-ref3

The model is the host's own WanModel (comfy.supported_models.WAN21_T2V / WAN22_T2V) with random weights:
on CUDA the Wan 2.1 14B / Wan 2.2 A14B expert architecture (5120 wide, 40 heads of 128, 40 blocks, UMT5
width 4096) in bfloat16 on a 480x832 clip of 33 frames (9 latent frames of 30x52 tokens: 14040 video
tokens per clip) and the Wan 2.2 5B TI2V one (3072 wide, 24 heads, 30 blocks, 48-channel latent) on a
704x1280 clip of 41 frames (11 latent frames of 22x40 tokens); on the CPU the 14B layout with head width
128 kept and fewer heads and blocks, on a 17-frame 128x192 clip (5 latent frames of 8x12 tokens).
One forward is one model call as the sampler makes it at cfg 1: one chunk of 4 clips, through
StyleAlignedPatch (its defaults: every block, AdaIN of the targets' video q/k before RoPE, the reference's
keys shifted by the clip width and x1.1, reference rows and target rows as separate backend calls).

Variants (timed interleaved, rotating order; ratio = median of per-repetition time / unpatched time):
    unpatched        no patch
    all frames       StyleAlignedPatch, shared_frames "all frames" (the default): each target attends to
                     its own tokens and all of the reference clip's (keys per target call: 2 L)
    matching frames  shared_frames "matching frames": each target frame's queries see their own clip and the
                     reference's same frame only (one backend call per latent frame; keys L + L / frames)
Peak memory as bench_transformer_attention.py measures it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_shared_attention import load_comfy, randomise, synchronize, time_interleaved  # noqa: E402
# One forward = one model call at cfg 1 (one chunk), as bench_transformer_attention.py makes it.
from bench_transformer_attention import Inputs, Variant, fmt_mib, forward, import_pack, peak_memory  # noqa: E402

WAN_A14B = {  # Wan 2.1 T2V 14B; each Wan 2.2 A14B expert has the same layout
    "image_model": "wan2.1", "model_type": "t2v", "patch_size": (1, 2, 2), "text_len": 512, "in_dim": 16,
    "dim": 5120, "ffn_dim": 13824, "freq_dim": 256, "text_dim": 4096, "out_dim": 16, "num_heads": 40,
    "num_layers": 40,
}
WAN22_5B = dict(WAN_A14B, in_dim=48, out_dim=48, dim=3072, ffn_dim=14336, num_heads=24, num_layers=30)
WAN_CPU = dict(WAN_A14B, dim=256, ffn_dim=512, text_dim=256, num_heads=2, num_layers=4)


@dataclass(frozen=True)
class Config:
    name: str
    dit: dict
    model_class: str  # in comfy.supported_models
    latent: tuple  # (channels, frames, height, width) of one clip's latent
    text_tokens: int = 512  # UMT5 pads to 512
    targets: int = 3


CONFIGS = {
    c.name: c
    for c in (
        Config("wan-a14b-480p-33f-ref3", WAN_A14B, "WAN21_T2V", (16, 9, 60, 104)),
        Config("wan22-5b-704p-41f-ref3", WAN22_5B, "WAN22_T2V", (48, 11, 44, 80)),
        Config("wan-cpu-192px-17f-ref3", WAN_CPU, "WAN21_T2V", (16, 5, 16, 24), text_tokens=64),
        Config("wan-cpu-256px-33f-ref3", WAN_CPU, "WAN21_T2V", (16, 9, 24, 32), text_tokens=64),
    )
}
DEFAULT_CONFIGS = {"cuda": ["wan-a14b-480p-33f-ref3", "wan22-5b-704p-41f-ref3"], "cpu": ["wan-cpu-192px-17f-ref3", "wan-cpu-256px-33f-ref3"]}
VARIANTS = ("unpatched", "all frames", "matching frames")


def build_model(config: Config, device, dtype):
    import comfy.model_patcher
    import comfy.supported_models

    model_config = getattr(comfy.supported_models, config.model_class)(dict(config.dit))
    model_config.set_inference_dtype(dtype, None)
    model = model_config.get_model({}, device=device)
    model.to(device)
    randomise(model.diffusion_model, 0, device)
    model.diffusion_model.to(dtype)
    model.diffusion_model.patch_embedding.float()  # WanModel keeps it in float32
    model.eval()
    params = sum(p.numel() for p in model.diffusion_model.parameters())
    return comfy.model_patcher.ModelPatcher(model, load_device=device, offload_device=device), params


def make_variants(patcher) -> list[Variant]:
    import importlib

    import_pack()
    node = importlib.import_module("stylealigned_bench_pack.nodes.patch_node").StyleAlignedPatch
    variants = []
    for name in VARIANTS:
        if name == "unpatched":
            variants.append(Variant(name, {}))
            continue
        patched = node.execute(
            model=patcher, reference_index=0, share_attention=True, adain_queries=True, adain_keys=True,
            adain_values=False, reference_strength=1.0, share_input_blocks=True, share_middle_block=True,
            share_output_blocks=True, shared_layer_fraction=1.0, start_percent=0.0, end_percent=1.0,
            shared_frames=name,
        ).result[0]
        variants.append(Variant(name, dict(patched.model_options["transformer_options"], wrappers=patched.wrappers)))
    return variants


def make_inputs(config: Config, device, dtype, seed: int = 1) -> Inputs:
    import torch

    rows = 1 + config.targets
    generator = torch.Generator(device=device).manual_seed(seed)
    x = torch.randn((rows,) + tuple(config.latent), generator=generator, device=device)
    sigma = torch.full((rows,), 0.8, device=device)
    context = torch.randn((rows, config.text_tokens, config.dit["text_dim"]), generator=generator, device=device, dtype=dtype)
    return Inputs(x, sigma, {"c_crossattn": context})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default=None)
    parser.add_argument("--repeats", type=int, default=None, help="timed forwards per variant (cuda 5, cpu 5)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--configs", default=None, help=f"comma list of {', '.join(CONFIGS)}")
    parser.add_argument("--json", default=None, help="write the figures to this file")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default on the CPU: 1)")
    args = parser.parse_args(argv)

    import torch

    device_name = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device_name == "cpu":
        torch.set_num_threads(args.threads or 1)
    load_comfy(device_name)
    device = torch.device(device_name)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    repeats = args.repeats or 5
    results = []
    with torch.inference_mode():
        for name in (args.configs or ",".join(DEFAULT_CONFIGS[device.type])).split(","):
            config = CONFIGS[name]
            patcher, params = build_model(config, device, dtype)
            inputs = make_inputs(config, device, dtype)
            variants = make_variants(patcher)
            _, frames, height, width = config.latent
            tokens = frames * (height // 2) * (width // 2)
            print(f"{name}: {params / 1e6:.1f}M params, {dtype}, {device}, clips {inputs.x.shape[0]}, latent frames "
                  f"{frames}, video tokens per clip {tokens}, text tokens {config.text_tokens}", flush=True)
            outputs = {v.name: forward(patcher, v, inputs).float() for v in variants}
            plain = outputs["unpatched"]
            for variant in variants[1:]:
                out = outputs[variant.name]
                print(f"  {variant.name}: reference moved by {(out[0] - plain[0]).abs().max().item():.2e}, targets by "
                      f"{(out[1:] - plain[1:]).abs().max().item():.2e}", flush=True)
            times = time_interleaved(patcher, variants, inputs, device, repeats, args.warmup, run=forward)
            base = times["unpatched"]
            for variant in variants:
                row = {"config": name, "variant": variant.name, "median_ms": statistics.median(times[variant.name]),
                       "ratio": statistics.median(t / b for t, b in zip(times[variant.name], base))}
                row.update(peak_memory(lambda v=variant: forward(patcher, v, inputs), device))
                results.append(row)
                print(f"  {variant.name:16s} {row['median_ms']:9.1f} ms {row['ratio']:7.3f}x  peak "
                      f"{fmt_mib(row.get('peak_mib'))}, above start {fmt_mib(row.get('above_mib'))}", flush=True)
            del patcher, inputs, variants, outputs
            if device.type == "cuda":
                synchronize(device)
                torch.cuda.empty_cache()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
