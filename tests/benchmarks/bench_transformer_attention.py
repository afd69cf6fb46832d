"""Cost of the transformer route: one forward of reference + 3 targets (Flux, Qwen-Image, Z-Image), patched vs unpatched, interleaved.

    python tests/benchmarks/bench_transformer_attention.py                 # CUDA if available, else CPU
    python tests/benchmarks/bench_transformer_attention.py --device cpu --repeats 5
    python tests/benchmarks/bench_transformer_attention.py --device cuda --configs flux-dev-1024-ref3

The model is the host's own Flux class (comfy.supported_models.Flux -> model_base.Flux -> ldm.flux.Flux)
with random weights: on CUDA the Flux.1-dev architecture (3072 wide, 24 heads, 19 double + 38 single
blocks, T5 width 4096, guidance embedding) in bfloat16 at 1024x1024 (4096 image tokens, 512 text tokens);
on the CPU the same layout with reduced widths and depth. Likewise Qwen-Image (60 joint blocks, 24 heads
of 128, 256 text tokens) and Z-Image (NextDiT 3840 wide, 30 heads, 2+2 refiner and 30 main layers, 250
caption tokens padded to 256), each with its family's default shared blocks. One forward is one model call as the host's
sampler makes it at cfg 1 (Flux dev): one chunk of reference + 3 targets, through the APPLY_MODEL wrappers
and the attention override the variant installs, under torch.inference_mode.

Variants (timed interleaved, rotating order; median over repetitions; ratio = median of per-repetition
time / unpatched time of the same repetition):
    unpatched        no patch
    pack             StyleAlignedPatch's transformer route with its defaults (AlignedGen: single blocks,
                     AdaIN of image q/k before RoPE, reference image K shifted and x1.1, V appended,
                     reference rows and target rows as separate backend calls); on a host that calls
                     attn1 patches inside DiT blocks (ComfyUI 0.33: Flux, Qwen-Image) AdaIN runs there
    pack-two-references  two weighted references (slots 0 and 1, weights 1 and 0.5) in the same batch, one
                     target fewer (opt-in)
    pack-override-adain  the same without that patch: the override undoes RoPE, AdaINs, redoes it (the
                     path of hosts without the hook, e.g. 0.3.75); opt-in: --variants ...,pack-override-adain
    floor            the reference's image-token K/V appended to every row in the shared blocks, one
                     backend call, nothing else: the extra attention the method cannot avoid
    straightforward  the pack's maths written plainly (CPU mode only by default): per-target loops, the
                     reference's statistics recomputed per target, one attention call with an additive
                     mask that keeps the reference on its own tokens (as AlignedGen's code does)
Peak memory: CUDA, torch.cuda.max_memory_allocated over one forward (absolute and above what was allocated
before it); CPU, the peak of live allocations during one forward from the torch profiler.
Before timing, the pack's and the straightforward outputs of one forward are compared (same maths).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_shared_attention import import_pack_module, load_comfy, randomise, synchronize, time_interleaved  # noqa: E402

FLUX_DEV = {
    "image_model": "flux", "guidance_embed": True, "in_channels": 16, "out_channels": 16, "patch_size": 2,
    "vec_in_dim": 768, "context_in_dim": 4096, "hidden_size": 3072, "mlp_ratio": 4.0, "num_heads": 24,
    "depth": 19, "depth_single_blocks": 38, "axes_dim": [16, 56, 56], "theta": 10000, "qkv_bias": True,
}
# Same head width (128) and axes as dev, fewer heads and blocks.
FLUX_CPU = dict(FLUX_DEV, context_in_dim=256, hidden_size=512, num_heads=4, depth=2, depth_single_blocks=4)


# Qwen-Image (20B): 60 joint blocks of 24 heads x 128, Qwen2.5-VL text width 3584, centred RoPE ids.
QWEN_IMAGE = {
    "image_model": "qwen_image", "patch_size": 2, "in_channels": 64, "out_channels": 16, "num_layers": 60,
    "attention_head_dim": 128, "num_attention_heads": 24, "joint_attention_dim": 3584, "axes_dims_rope": [16, 56, 56],
}
QWEN_IMAGE_CPU = dict(QWEN_IMAGE, num_layers=4, num_attention_heads=4, joint_attention_dim=256)
# Z-Image (6B, as comfy/model_detection.py reads it): NextDiT 3840 wide, 30 heads, 30 main layers, 2+2
# refiner layers, Qwen3-4B text width 2560, caption and image tokens padded to multiples of 32.
Z_IMAGE = {
    "image_model": "lumina2", "patch_size": 2, "in_channels": 16, "dim": 3840, "cap_feat_dim": 2560,
    "n_layers": 30, "n_refiner_layers": 2, "n_heads": 30, "n_kv_heads": 30, "qk_norm": True,
    "axes_dims": [32, 48, 48], "axes_lens": [1536, 512, 512], "rope_theta": 256.0, "ffn_dim_multiplier": 8.0 / 3.0,
    "z_image_modulation": True, "time_scale": 1000.0, "pad_tokens_multiple": 32,
}
Z_IMAGE_CPU = dict(Z_IMAGE, dim=512, n_heads=4, n_kv_heads=4, n_layers=4, n_refiner_layers=1, cap_feat_dim=256)


@dataclass(frozen=True)
class Config:
    name: str
    dit: dict
    image_size: int  # pixels; latent = image_size / 8, image tokens = (latent / 2)^2
    text_tokens: int
    targets: int = 3
    model_class: str = "Flux"  # in comfy.supported_models


CONFIGS = {
    c.name: c
    for c in (
        Config("flux-dev-1024-ref3", FLUX_DEV, 1024, 512),
        Config("flux-cpu-384-ref3", FLUX_CPU, 384, 128),
        Config("qwen-image-1024-ref3", QWEN_IMAGE, 1024, 256, model_class="QwenImage"),
        Config("qwen-image-cpu-384-ref3", QWEN_IMAGE_CPU, 384, 64, model_class="QwenImage"),
        # 250 caption tokens: padded to 256 by the model, as a real prompt would be.
        Config("z-image-1024-ref3", Z_IMAGE, 1024, 250, model_class="ZImage"),
        Config("z-image-cpu-384-ref3", Z_IMAGE_CPU, 384, 58, model_class="ZImage"),
    )
}
DEFAULT_CONFIGS = {
    "cuda": ["flux-dev-1024-ref3", "qwen-image-1024-ref3", "z-image-1024-ref3"],
    "cpu": ["flux-cpu-384-ref3", "qwen-image-cpu-384-ref3", "z-image-cpu-384-ref3"],
}
CHUNKS = [0]  # Flux dev samples at cfg 1: one cond chunk per call
REFERENCE_INDEX = 0


def import_pack():
    """The pack as a package (its nodes use relative imports), without ComfyUI's custom-node loader."""
    return import_pack_module("nodes.transformer_model"), import_pack_module("stylealign_core")


def with_host_fields(dit: dict) -> dict:
    """The config as this host's classes accept it: the fields newer hosts require (txt_ids_dims), added the way
    the tiny test model of the same image_model is fitted (tests/host/tiny_dit_models.fit_host_config)."""
    from host.tiny_dit_models import TINY_DITS, fit_host_config

    kind = dit.get("image_model")
    return fit_host_config(kind, dit) if kind in TINY_DITS else dict(dit)


def build_model(config: Config, device, dtype):
    import comfy.model_patcher
    import comfy.supported_models

    model_config = getattr(comfy.supported_models, config.model_class)(with_host_fields(config.dit))
    model_config.set_inference_dtype(dtype, None)
    model = model_config.get_model({}, device=device)
    model.to(device)
    randomise(model.diffusion_model, 0, device)
    model.diffusion_model.to(dtype)
    model.eval()
    params = sum(p.numel() for p in model.diffusion_model.parameters())
    return comfy.model_patcher.ModelPatcher(model, load_device=device, offload_device=device), params


# ---------------------------------------------------------------------------------------------- variants

class BenchOverride:
    """Base of the floor and straightforward variants: the pack's per-call layout (left by the layout_only
    wrapper) says which calls are shared blocks (the family's default blocks) and where the image tokens
    are; every other call goes to the backend unchanged."""

    def __init__(self, family, shared_blocks, key_scale: float):
        self.family, self.shared_blocks, self.key_scale = family, shared_blocks, key_scale

    def __call__(self, backend, q, k, v, heads, *rest, **kwargs):
        core = sys.modules["stylealigned_bench_pack.stylealign_core.transformer"]
        options = kwargs.get("transformer_options") or {}
        layout = options.get(core.CALL_LAYOUT_KEY)
        if layout is None:
            return backend(q, k, v, heads, *rest, **kwargs)
        call_index = layout.attention_calls
        layout.attention_calls += 1
        if rest and rest[0] is not None or self.family.block_key(options, call_index) not in self.shared_blocks:
            return backend(q, k, v, heads, *rest, **kwargs)
        return self.shared(backend, q, k, v, heads, layout.for_call(call_index), kwargs)


class FloorOverride(BenchOverride):
    """Shared blocks: every row gets the reference's image-token K/V appended; one call, nothing else."""

    def shared(self, backend, q, k, v, heads, layout, kwargs):
        import torch

        image = layout.image_slice
        images = layout.batch.images_per_chunk
        reference = [chunk * images + REFERENCE_INDEX for chunk in range(layout.batch.chunks) for _ in range(images)]
        k = torch.cat([k, k[reference][:, :, image]], dim=2)
        v = torch.cat([v, v[reference][:, :, image]], dim=2)
        return backend(q, k, v, heads, **kwargs)


class StraightforwardOverride(BenchOverride):
    """The pack's default maths written plainly, one attention call with a mask (AlignedGen's way)."""

    def shared(self, backend, q, k, v, heads, layout, kwargs):
        import torch

        image = layout.image_slice
        rotations, shift = layout.image_rotations, layout.shift_rotation

        def rot(x, r):
            if r is None:
                return x.float()
            x0, x1 = x.float()[..., 0::2], x.float()[..., 1::2]
            return torch.stack([r[..., 0, 0] * x0 + r[..., 0, 1] * x1, r[..., 1, 0] * x0 + r[..., 1, 1] * x1], -1).flatten(-2)

        def adain(x, y, eps=1e-5):
            mx, sx = x.mean(-2, keepdim=True), (x.var(-2, keepdim=True, correction=0) + eps).sqrt()
            my, sy = y.mean(-2, keepdim=True), (y.var(-2, keepdim=True, correction=0) + eps).sqrt()
            return (x - mx) / sx * sy + my

        images = layout.batch.images_per_chunk
        q, k = q.clone(), k.clone()
        unrotate = None if rotations is None else rotations.transpose(-1, -2)
        appended_k, appended_v = [], []
        for row in range(q.shape[0]):
            ref = (row // images) * images + REFERENCE_INDEX
            if row != ref:
                for t in (q, k):
                    own = rot(t[row : row + 1, :, image], unrotate)
                    target = rot(t[ref : ref + 1, :, image], unrotate)
                    t[row : row + 1, :, image] = rot(adain(own, target), rotations).to(t.dtype)
            appended_k.append((rot(k[ref : ref + 1, :, image], shift) * self.key_scale).to(k.dtype))
            appended_v.append(v[ref : ref + 1, :, image])
        tokens = k.shape[2]
        k = torch.cat([k, torch.cat(appended_k)], dim=2)
        v = torch.cat([v, torch.cat(appended_v)], dim=2)
        mask = torch.zeros((q.shape[0], 1, 1, k.shape[2]), dtype=q.dtype, device=q.device)
        for chunk in range(layout.batch.chunks):
            mask[chunk * images + REFERENCE_INDEX, ..., tokens:] = float("-inf")
        return backend(q, k, v, heads, **dict(kwargs, mask=mask))


@dataclass
class Variant:
    name: str
    transformer_options: dict


def make_variants(patcher, names: list[str]) -> list[Variant]:
    transformer_model, core = import_pack()
    from stylealigned_bench_pack.stylealign_core.transformer.sharing_policy import transformer_sharing

    family = transformer_model.transformer_family(patcher, "bench")
    options = core.StyleAlignedOptions(reference_index=REFERENCE_INDEX)
    diffusion_model = patcher.model.diffusion_model
    sharing = transformer_sharing(options, family, family.block_counts(diffusion_model))  # the node's policy
    patched = transformer_model.install_transformer_route(patcher, family, options, sharing)
    pack_options = dict(patched.model_options["transformer_options"], wrappers=patched.wrappers)

    build_layout = family.call_layout

    def layout_only(executor, x, t, c_concat, c_crossattn, control, transformer_options, **kwargs):
        """The pack's per-call layout (positions) for the variants that bring their own override."""
        transformer_options = dict(transformer_options)
        batch = core.batch_layout(x.shape[0], transformer_options["cond_or_uncond"], REFERENCE_INDEX)
        transformer_options[core.transformer.CALL_LAYOUT_KEY] = build_layout(
            executor.class_obj.diffusion_model, batch, True, x, c_crossattn, transformer_options, kwargs
        )
        return executor(x, t, c_concat, c_crossattn, control, transformer_options, **kwargs)

    import comfy.patcher_extension

    layout_wrappers = {comfy.patcher_extension.WrappersMP.APPLY_MODEL: {"bench": [layout_only]}}
    variants = []
    for name in names:
        if name == "unpatched":
            variants.append(Variant(name, {}))
        elif name == "pack":
            variants.append(Variant(name, pack_options))
        elif name == "pack-override-adain":
            # The 0.3.75 path on any host: without the pre-RoPE attn1 patch, the override undoes RoPE, AdaINs
            # and redoes it. Where the host calls the hook (0.33 Flux / Qwen-Image) "pack" AdaINs there.
            patches = {key: value for key, value in pack_options.get("patches", {}).items() if key != "attn1_patch"}
            variants.append(Variant(name, dict(pack_options, patches=patches)))
        elif name == "pack-two-references":
            # Two weighted references (slots 0 and 1, weights 1 and 0.5): one target fewer than "pack".
            from stylealigned_bench_pack.stylealign_core.references import WeightedReferences

            two = core.StyleAlignedOptions(reference_index=0, references=WeightedReferences((0, 1), (1.0, 0.5)))
            patched_two = transformer_model.install_transformer_route(patcher, family_host, two, sharing)
            variants.append(Variant(name, dict(patched_two.model_options["transformer_options"], wrappers=patched_two.wrappers)))
        elif name in ("floor", "straightforward"):
            override = (FloorOverride if name == "floor" else StraightforwardOverride)(
                family, sharing.shared_blocks, sharing.key_scale)
            variants.append(Variant(name, {"wrappers": layout_wrappers, "optimized_attention_override": override}))
        else:
            raise SystemExit(f"unknown variant {name!r}")
    return variants


@dataclass
class Inputs:
    x: object
    sigma: object
    c: dict


def make_inputs(config: Config, device, dtype, seed: int = 1) -> Inputs:
    import torch

    rows = len(CHUNKS) * (1 + config.targets)
    latent = config.image_size // 8
    generator = torch.Generator(device=device).manual_seed(seed)
    # Qwen-Image takes a Wan 2.1 latent with a time axis: (B, 16, 1, H, W).
    shape = (rows, 16, 1, latent, latent) if config.model_class == "QwenImage" else (rows, 16, latent, latent)
    x = torch.randn(shape, generator=generator, device=device)
    sigma = torch.full((rows,), 0.8, device=device)

    def text(width):
        return torch.randn((rows, config.text_tokens, width), generator=generator, device=device, dtype=dtype)

    if config.model_class == "QwenImage":
        c = {"c_crossattn": text(config.dit["joint_attention_dim"])}
    elif config.model_class == "ZImage":
        c = {"c_crossattn": text(config.dit["cap_feat_dim"]), "num_tokens": config.text_tokens}
    else:
        c = {
            "c_crossattn": text(config.dit["context_in_dim"]),
            "y": torch.randn((rows, config.dit["vec_in_dim"]), generator=generator, device=device, dtype=dtype),
            "guidance": torch.full((rows,), 3.5, device=device),
        }
    return Inputs(x, sigma, c)


def forward(patcher, variant: Variant, inputs: Inputs):
    transformer_options = dict(variant.transformer_options)
    transformer_options["cond_or_uncond"] = list(CHUNKS)
    transformer_options["sigmas"] = inputs.sigma
    return patcher.model.apply_model(inputs.x, inputs.sigma, transformer_options=transformer_options, **inputs.c)


def peak_memory(run: Callable, device) -> dict:
    import torch

    if device.type == "cuda":
        synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        run()
        synchronize(device)
        peak = torch.cuda.max_memory_allocated(device)
        return {"peak_mib": peak / 2**20, "above_mib": (peak - before) / 2**20}
    try:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            run()
        events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"), key=lambda e: e.start_ns())
        live = peak = 0
        for event in events:
            live += event.nbytes()
            peak = max(peak, live)
        return {"peak_mib": None, "above_mib": peak / 2**20}
    except Exception as exc:  # profiler API differs: report no memory rather than fail the timing
        return {"peak_mib": None, "above_mib": None, "note": type(exc).__name__}


def fmt_mib(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.0f} MiB"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default=None)
    parser.add_argument("--repeats", type=int, default=None, help="timed forwards per variant (cuda 10, cpu 5)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed forwards per variant first (cuda 2, cpu 1)")
    parser.add_argument("--configs", default=None, help=f"comma list of {', '.join(CONFIGS)}")
    parser.add_argument("--variants", default=None, help="comma list (default: cuda unpatched,pack,floor; cpu adds straightforward)")
    parser.add_argument("--json", default=None, help="write the figures to this file")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default on the CPU: 1; several threads on a busy machine spin in barriers)")
    args = parser.parse_args(argv)

    import torch

    device_name = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    threads = args.threads or (1 if device_name == "cpu" else None)
    if threads:
        torch.set_num_threads(threads)
    load_comfy(device_name)
    device = torch.device(device_name)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    repeats = args.repeats or (10 if device.type == "cuda" else 5)
    warmup = args.warmup if args.warmup is not None else (2 if device.type == "cuda" else 1)
    names = (args.configs or ",".join(DEFAULT_CONFIGS[device.type])).split(",")
    variant_names = (args.variants or ("unpatched,pack,floor" if device.type == "cuda" else "unpatched,pack,floor,straightforward")).split(",")
    results = []
    with torch.inference_mode():
        for name in names:
            config = CONFIGS[name]
            patcher, params = build_model(config, device, dtype)
            inputs = make_inputs(config, device, dtype)
            variants = make_variants(patcher, variant_names)
            by_name = {v.name: v for v in variants}
            print(f"{name}: {params / 1e6:.1f}M params, {dtype}, {device}, rows {inputs.x.shape[0]}, "
                  f"image tokens {(config.image_size // 16) ** 2}, text tokens {config.text_tokens}", flush=True)
            if "pack" in by_name and "pack-override-adain" in by_name:
                hook_out = forward(patcher, by_name["pack"], inputs).float()
                override_out = forward(patcher, by_name["pack-override-adain"], inputs).float()
                print(f"  hook vs override AdaIN: max |difference| = {(hook_out - override_out).abs().max().item():.2e} "
                      f"(of max |output| {override_out.abs().max().item():.2e})", flush=True)
            if "pack" in by_name and "straightforward" in by_name:
                pack_out = forward(patcher, by_name["pack"], inputs).float()
                plain_out = forward(patcher, by_name["straightforward"], inputs).float()
                unpatched_out = forward(patcher, Variant("unpatched", {}), inputs).float()
                difference = (pack_out - plain_out).abs().max().item()
                effect = (pack_out[1:] - unpatched_out[1:]).abs().max().item()
                print(f"  same maths: max |pack - straightforward| = {difference:.2e} (targets moved by {effect:.2e} "
                      f"from unpatched; reference moved by {(pack_out[0] - unpatched_out[0]).abs().max().item():.2e})", flush=True)
            times = time_interleaved(patcher, variants, inputs, device, repeats, warmup, run=forward)
            base = times["unpatched"] if "unpatched" in times else None
            for variant in variants:
                row = {"config": name, "variant": variant.name, "median_ms": statistics.median(times[variant.name])}
                if base:
                    row["ratio"] = statistics.median(t / b for t, b in zip(times[variant.name], base))
                row.update(peak_memory(lambda v=variant: forward(patcher, v, inputs), device))
                results.append(row)
                ratio = f"{row['ratio']:.3f}x" if "ratio" in row else ""
                print(f"  {variant.name:16s} {row['median_ms']:9.1f} ms {ratio:>8s}  peak {fmt_mib(row.get('peak_mib'))}, "
                      f"above start {fmt_mib(row.get('above_mib'))}", flush=True)
            del patcher, inputs, variants
            if device.type == "cuda":
                torch.cuda.empty_cache()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
