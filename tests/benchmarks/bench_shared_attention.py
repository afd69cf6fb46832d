"""Cost of shared attention: one UNet forward of a CFG batch, patched vs unpatched, timed interleaved.

    python tests/benchmarks/bench_shared_attention.py                  # CUDA if available, else CPU
    python tests/benchmarks/bench_shared_attention.py --device cpu --repeats 5
    python tests/benchmarks/bench_shared_attention.py --device cuda --configs sd15-512-ref4,sdxl-1024-ref1

The UNets are the host's own classes (comfy.supported_models SD15 / SDXL -> model_base -> UNetModel) with
random weights: full size in float16 on CUDA; on the CPU the same architectures with fewer channels and
small latents, so a run takes a few minutes on 2 cores. Each forward is what the host's sampler does for
one step: the latent batch (reference + targets) twice (cond and uncond chunks, cond_or_uncond [1, 0]),
through the model-function wrapper when the variant has one, with transformer_options carrying the
attn1 patch, under torch.inference_mode.

Variants, timed interleaved (every repetition runs each variant once, in a rotating order; GPU clocks and
CPU frequency drift within a run), median over repetitions; a variant's ratio is the median over
repetitions of its time over the unpatched time of the same repetition:
    unpatched        no patch
    pack             the pack's patch as the node installs it (its own layer listing and selection, then
                     SharedAttentionPatch + UNetModelCall + override through install_patch_set on a clone)
    pack-eager       the same with the fused Triton path switched off (CUDA only)
    straightforward  the same maths written plainly: AdaIN in several passes, on q and k separately,
                     statistics of expanded copies of the reference, the reference normalised against itself
    floor            the reference's tokens appended to the k/v inputs and nothing else: the attn1_patch
                     route's floor (the extra attention and k/v projections)
    pack-projections the pack with adain_on "projections (paper)" (AdaIN on the to_q/to_k outputs, in the
                     attention override); pack-inputs the pack with adain_on "inputs" (on request only)
    pack-full-sharing  full_attention_sharing (every image attends to every image of its chunk; on request)
    pack-shared-norm   share_group_norm on top of the default pack (on request)
    pack-two-references  two weighted references (slots 0 and 1, weights 1 and 0.5; StyleAlignedReferences) in
                     the same batch, so one target fewer than "pack" (on request); floor-two-references:
                     both references' tokens appended to the k/v inputs and nothing else (on request)
Peak memory: CUDA, torch.cuda.max_memory_allocated over one forward (absolute, weights included, and above
what was allocated before the forward); CPU, the peak of live CPU allocations during one forward, summed
from the torch profiler's allocation events (tracemalloc does not see torch's allocator).

Prints one line per config and variant, then a summary table; --json writes the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

REPO_ROOT = Path(__file__).resolve().parents[2]
TESTS_DIR = REPO_ROOT / "tests"

# ----------------------------------------------------------------------------------------------- configs

SD15_FULL = {
    "image_size": 32, "in_channels": 4, "out_channels": 4, "model_channels": 320,
    "num_res_blocks": [2, 2, 2, 2], "channel_mult": [1, 2, 4, 4],
    "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0], "transformer_depth_middle": 1,
    "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
    "context_dim": 768, "use_linear_in_transformer": False, "adm_in_channels": None,
    "use_spatial_transformer": True, "legacy": False, "use_temporal_attention": False,
    "use_temporal_resblock": False, "num_heads": 8, "num_head_channels": -1, "use_checkpoint": False,
}
SDXL_FULL = {
    "image_size": 32, "in_channels": 4, "out_channels": 4, "model_channels": 320,
    "num_res_blocks": [2, 2, 2], "channel_mult": [1, 2, 4],
    "transformer_depth": [0, 0, 2, 2, 10, 10], "transformer_depth_middle": 10,
    "transformer_depth_output": [0, 0, 0, 2, 2, 2, 10, 10, 10],
    "context_dim": 2048, "use_linear_in_transformer": True, "adm_in_channels": 2816, "num_classes": "sequential",
    "use_spatial_transformer": True, "legacy": False, "use_temporal_attention": False,
    "use_temporal_resblock": False, "num_heads": -1, "num_head_channels": 64, "use_checkpoint": False,
}
# CPU: the same layouts (levels, attention placement, linear vs conv projections, heads of 64 channels for
# SDXL), fewer channels and shallower SDXL transformer stacks.
SD15_CPU = dict(SD15_FULL, model_channels=64, context_dim=256)
SDXL_CPU = dict(
    SDXL_FULL, model_channels=64, context_dim=256, transformer_depth=[0, 0, 2, 2, 4, 4], transformer_depth_middle=4,
    transformer_depth_output=[0, 0, 0, 2, 2, 2, 4, 4, 4], num_head_channels=32,
)


def _tiny(name: str) -> dict:
    """The test suite's tiny UNets (tests/host/tiny_models.py), for a quick smoke run."""
    sys.path.insert(0, str(TESTS_DIR))
    from host import tiny_models

    return dict(getattr(tiny_models, name))


@dataclass(frozen=True)
class Config:
    name: str
    family: str  # "sd15" | "sdxl"
    unet_source: object = field(hash=False)  # the UNet config dict, or a callable returning it
    image_size: int  # pixels; latents are image_size / 8
    targets: int  # images per chunk = 1 reference + targets
    context_tokens: int = 77

    @property
    def unet(self) -> dict:
        return self.unet_source() if callable(self.unet_source) else self.unet_source


CONFIGS = {
    c.name: c
    for c in (
        Config("sd15-512-ref4", "sd15", SD15_FULL, 512, 4),
        Config("sdxl-1024-ref1", "sdxl", SDXL_FULL, 1024, 1),
        Config("sdxl-1024-ref4", "sdxl", SDXL_FULL, 1024, 4),
        Config("sd15-cpu-192-ref4", "sd15", SD15_CPU, 192, 4),
        Config("sdxl-cpu-384-ref1", "sdxl", SDXL_CPU, 384, 1),
        Config("sdxl-cpu-384-ref4", "sdxl", SDXL_CPU, 384, 4),
        Config("sd15-tiny", "sd15", lambda: _tiny("SD15_TINY_UNET"), 64, 3, context_tokens=8),
        Config("sdxl-tiny", "sdxl", lambda: _tiny("SDXL_TINY_UNET"), 64, 3, context_tokens=8),
    )
}
DEFAULT_CONFIGS = {
    "cuda": ["sd15-512-ref4", "sdxl-1024-ref1", "sdxl-1024-ref4"],
    "cpu": ["sd15-cpu-192-ref4", "sdxl-cpu-384-ref1", "sdxl-cpu-384-ref4"],
}
CHUNKS = [1, 0]  # cond and uncond in one call, as the host batches them
REFERENCE_INDEX = 0

# ------------------------------------------------------------------------------------------------- host


def load_comfy(device: str):
    """Import the ComfyUI host (tests/host/fetch_comfyui.py finds it) without parsing the command line."""
    sys.path.insert(0, str(TESTS_DIR))
    from host.fetch_comfyui import comfyui_path

    host = comfyui_path()
    for entry in ("", str(REPO_ROOT), os.getcwd()):
        while entry in sys.path and Path(entry or ".").resolve() == REPO_ROOT:
            sys.path.remove(entry)
    sys.path.insert(0, str(host))
    import comfy.options

    comfy.options.enable_args_parsing(False)
    import comfy.cli_args

    comfy.cli_args.args.cpu = device == "cpu"
    # PyTorch SDPA attention on both devices (the host's default on NVIDIA; on the CPU it would pick
    # sub-quadratic attention): the DESIGN figures were measured with it.
    comfy.cli_args.args.use_pytorch_cross_attention = True
    import comfy.model_management  # noqa: F401
    import comfy.model_patcher  # noqa: F401
    import comfy.supported_models  # noqa: F401

    # The pack's core (pure torch) from the repository root, after the host so `nodes` stays ComfyUI's.
    if str(REPO_ROOT) not in sys.path:
        sys.path.append(str(REPO_ROOT))
    return host


def randomise(module, seed: int, device) -> None:
    """Deterministic, well-scaled random weights (as tests/host/tiny_models.py), drawn on the device."""
    import torch

    generator = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            if parameter.ndim == 1:
                is_norm_weight = name.endswith("weight") and (
                    "norm" in name or ".in_layers.0." in name or ".out_layers.0." in name or name.startswith("out.0.")
                )
                values = torch.randn(parameter.shape, generator=generator, device=device)
                parameter.copy_(1.0 + 0.1 * values if is_norm_weight else 0.05 * values)
            else:
                fan_in = parameter[0].numel()
                values = torch.randn(parameter.shape, generator=generator, device=device)
                parameter.copy_(values / fan_in**0.5)


def build_model(config: Config, device, dtype):
    import torch
    import comfy.model_patcher
    import comfy.supported_models

    config_class = {"sd15": comfy.supported_models.SD15, "sdxl": comfy.supported_models.SDXL}[config.family]
    model_config = config_class(dict(config.unet))
    model_config.set_inference_dtype(dtype, None)
    model = model_config.get_model({}, device=device)
    model.to(device)
    randomise(model.diffusion_model, 0, device)
    model.diffusion_model.to(dtype)
    model.eval()
    params = sum(p.numel() for p in model.diffusion_model.parameters())
    patcher = comfy.model_patcher.ModelPatcher(model, load_device=device, offload_device=device)
    return patcher, params


PACK_NAME = "stylealigned_bench_pack"


def import_pack_module(module: str):
    """A module of the pack, imported as a package (its nodes use relative imports) without ComfyUI's
    custom-node loader, so the benchmark measures the product's own code."""
    import importlib
    import types

    if PACK_NAME not in sys.modules:
        package = types.ModuleType(PACK_NAME)
        package.__path__ = [str(REPO_ROOT)]
        sys.modules[PACK_NAME] = package
    return importlib.import_module(f"{PACK_NAME}.{module}")


# ---------------------------------------------------------------------------------------------- variants


def chunk_layout(rows: int, extra_options: dict):
    chunks = len(extra_options.get("cond_or_uncond") or [0])
    return chunks, rows // chunks


def floor_patch(q, k, v, extra_options):
    """The attn1_patch route's floor: the reference's tokens appended to k/v inputs, nothing else."""
    import torch

    chunks, images = chunk_layout(k.shape[0], extra_options)
    grouped = k.reshape(chunks, images, k.shape[1], k.shape[2])
    reference = grouped[:, REFERENCE_INDEX : REFERENCE_INDEX + 1].expand_as(grouped)
    shared = torch.cat([grouped, reference], dim=2).reshape(k.shape[0], -1, k.shape[2])
    return q, shared, shared


def floor_two_references_patch(q, k, v, extra_options):
    """The floor for two references (slots 0 and 1): both references' tokens appended to the k/v inputs."""
    import torch

    chunks, images = chunk_layout(k.shape[0], extra_options)
    grouped = k.reshape(chunks, images, k.shape[1], k.shape[2])
    first, second = (grouped[:, slot : slot + 1].expand_as(grouped) for slot in (0, 1))
    shared = torch.cat([grouped, first, second], dim=2).reshape(k.shape[0], -1, k.shape[2])
    return q, shared, shared


def _expand_reference(x, chunks, images):
    """A materialised copy of each chunk's reference, one per image (as plain implementations do)."""
    grouped = x.reshape(chunks, images, *x.shape[1:])
    reference = grouped[:, REFERENCE_INDEX : REFERENCE_INDEX + 1]
    return reference.expand_as(grouped).reshape(x.shape)  # reshape of an expanded view copies


def _straightforward_adain(x, chunks, images, eps=1e-5):
    """AdaIN in several passes: mean, variance, statistics of the expanded reference (the reference
    normalised against itself too), subtract, divide, multiply, add, in float32."""
    x32 = x.float()
    mean = x32.mean(dim=-2, keepdim=True)
    std = (x32.var(dim=-2, keepdim=True, correction=0) + eps).sqrt()
    reference = _expand_reference(x32, chunks, images)
    reference_mean = reference.mean(dim=-2, keepdim=True)
    reference_std = (reference.var(dim=-2, keepdim=True, correction=0) + eps).sqrt()
    return ((x32 - mean) / std * reference_std + reference_mean).to(x.dtype)


def straightforward_patch(q, k, v, extra_options):
    """The same maths as the pack's default (AdaIN on q and k, reference shared in k and v), written plainly."""
    import torch

    chunks, images = chunk_layout(k.shape[0], extra_options)
    q = _straightforward_adain(q, chunks, images)
    k = _straightforward_adain(k, chunks, images)
    k = torch.cat([k, _expand_reference(k, chunks, images)], dim=-2)
    v = torch.cat([v, _expand_reference(v, chunks, images)], dim=-2)
    return q, k, v


@dataclass
class Variant:
    name: str
    transformer_options: dict
    wrapper: Optional[Callable] = None
    before: Optional[Callable] = None  # run before each forward (e.g. switch the Triton path)
    after: Optional[Callable] = None  # run after each forward (e.g. take module patches off again)


# Pack variants: the StyleAlignedOptions each sets beyond the defaults.
# "pack" is what the node builds with its defaults (adain_on "projections (paper)").
PACK_OPTIONS = {
    "pack": {"adain_on_projections": True},
    "pack-eager": {"adain_on_projections": True},
    "pack-projections": {"adain_on_projections": True},
    "pack-inputs": {"adain_on_projections": False},
    "pack-full-sharing": {"full_attention_sharing": True},
    "pack-shared-norm": {"adain_on_projections": True, "share_group_norm": True},
    # (slot, weight) pairs become StyleAlignedOptions.references in make_variants.
    "pack-two-references": {"adain_on_projections": True, "references": ((0, 1.0), (1, 0.5))},
    "pack-two-references-inputs": {"adain_on_projections": False, "references": ((0, 1.0), (1, 0.5))},
    "pack-inputs-one-reference": {"adain_on_projections": False},
}


def pack_options(core, name: str):
    """The StyleAlignedOptions of a pack variant; (slot, weight) pairs become its references."""
    values = dict(PACK_OPTIONS[name])
    pairs = values.pop("references", None)
    if pairs is None:
        return core.StyleAlignedOptions(reference_index=REFERENCE_INDEX, **values)
    references = import_pack_module("stylealign_core.references")
    chosen = references.WeightedReferences(tuple(slot for slot, _ in pairs), tuple(weight for _, weight in pairs))
    return core.StyleAlignedOptions(reference_index=chosen.slots[0], references=chosen, **values)


def group_norm_patches(diffusion_model, runtime, shared_group_norm):
    """before/after callables that put the shared GroupNorm forwards on the modules for one forward and take
    them off again (the node does this through ModelPatcher object patches, which this benchmark bypasses)."""
    import contextlib

    import torch

    norms = [m for m in diffusion_model.modules() if isinstance(m, torch.nn.GroupNorm)]

    def affine(module, like):
        return contextlib.nullcontext((module.weight, module.bias))

    def before():
        for module in norms:
            module.forward = shared_group_norm.SharedGroupNormForward(type(module).forward.__get__(module), module, runtime, affine)

    def after():
        for module in norms:
            del module.forward

    return before, after


def make_variants(patcher, names: list[str]) -> list[Variant]:
    core = import_pack_module("stylealign_core")
    host_model = import_pack_module("nodes.host_model")
    patch_set = import_pack_module("nodes.patch_set")
    fused_adain = import_pack_module("stylealign_core.maths.fused_adain")

    variants = []
    for name in names:
        if name == "unpatched":
            variants.append(Variant(name, dict(patcher.model_options.get("transformer_options", {}))))
        elif name in PACK_OPTIONS:
            # What the StyleAlignedPatch node builds (defaults, or the option the variant names).
            options = pack_options(core, name)
            # The node's own layer listing and selection (nodes/host_model.py, unet/layer_selection.py).
            layers = host_model.self_attention_layers(patcher, "bench")
            runtime = core.PatchRuntime()
            # The node's own patch set: the attn1 patch, the model call behind the APPLY_MODEL adapter, and the
            # attention override (reference strength, HyperTile re-tiling, AdaIN on the projections; it passes
            # calls through at the defaults, but its per-call cost belongs in the figure).
            patched = patch_set.install_patch_set(
                patcher,
                core.UNetModelCall(options, runtime),
                attn1_patch=core.SharedAttentionPatch(options, runtime, core.select_shared_layers(layers, options)),
                make_attention_override=lambda previous, runtime=runtime: core.ReferenceLogitShift(runtime, previous),
            )
            enable = name != "pack-eager"
            before = after = None
            if options.share_group_norm:
                before, after = group_norm_patches(
                    patcher.model.diffusion_model, runtime, import_pack_module("stylealign_core.unet.shared_group_norm"))

            def before_forward(enable=enable, patch_norms=before):
                fused_adain.set_triton_enabled(enable)
                if patch_norms is not None:
                    patch_norms()

            # The host's sampler hands the patcher's wrappers to the model in transformer_options.
            variants.append(Variant(
                name, dict(patched.model_options["transformer_options"], wrappers=patched.wrappers),
                before=before_forward, after=after,
            ))
        elif name in ("straightforward", "floor", "floor-two-references"):
            patched = patcher.clone()
            patched.set_model_attn1_patch(
                {"straightforward": straightforward_patch, "floor": floor_patch, "floor-two-references": floor_two_references_patch}[name])
            variants.append(Variant(name, patched.model_options["transformer_options"]))
        else:
            raise SystemExit(f"unknown variant {name!r}")
    return variants


# ----------------------------------------------------------------------------------------------- running


@dataclass
class Inputs:
    x: object
    sigma: object
    c: dict


def make_inputs(config: Config, patcher, device, dtype, seed: int = 1) -> Inputs:
    import torch

    images = 1 + config.targets
    rows = len(CHUNKS) * images
    latent = config.image_size // 8
    generator = torch.Generator(device=device).manual_seed(seed)
    x = torch.randn((rows, 4, latent, latent), generator=generator, device=device)
    sigma = torch.full((rows,), 2.0, device=device)
    context_dim = config.unet["context_dim"]
    c = {"c_crossattn": torch.randn((rows, config.context_tokens, context_dim), generator=generator, device=device, dtype=dtype)}
    if config.unet.get("adm_in_channels"):
        c["y"] = torch.randn((rows, config.unet["adm_in_channels"]), generator=generator, device=device, dtype=dtype)
    return Inputs(x, sigma, c)


def forward(patcher, variant: Variant, inputs: Inputs):
    """One model call, built the way comfy.samplers._calc_cond_batch builds it."""
    if variant.before is not None:
        variant.before()
    model = patcher.model
    transformer_options = dict(variant.transformer_options)
    transformer_options["cond_or_uncond"] = list(CHUNKS)
    transformer_options["sigmas"] = inputs.sigma
    c = dict(inputs.c, transformer_options=transformer_options)
    try:
        if variant.wrapper is not None:
            return variant.wrapper(
                model.apply_model, {"input": inputs.x, "timestep": inputs.sigma, "c": c, "cond_or_uncond": list(CHUNKS)}
            )
        return model.apply_model(inputs.x, inputs.sigma, **c)
    finally:
        if variant.after is not None:
            variant.after()


def synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(patcher, variants, inputs, device, repeats: int, warmup: int, run: Optional[Callable] = None) -> dict[str, list[float]]:
    """Milliseconds per forward of each variant, in rotating order (clock drift hits all alike).
    run(patcher, variant, inputs) is one forward; default: this file's UNet forward."""
    run = run or forward
    times = {v.name: [] for v in variants}
    for _ in range(warmup):
        for variant in variants:
            run(patcher, variant, inputs)
    synchronize(device)
    for repetition in range(repeats):
        shift = repetition % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            synchronize(device)
            start = time.perf_counter()
            run(patcher, variant, inputs)
            synchronize(device)
            times[variant.name].append((time.perf_counter() - start) * 1000.0)
    return times


def peak_memory(patcher, variant, inputs, device) -> dict:
    """Peak memory of one forward: absolute and above what was allocated before it."""
    import torch

    if device.type == "cuda":
        synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        forward(patcher, variant, inputs)
        synchronize(device)
        peak = torch.cuda.max_memory_allocated(device)
        return {"peak_mib": peak / 2**20, "above_mib": (peak - before) / 2**20}
    try:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            forward(patcher, variant, inputs)
        events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
        events.sort(key=lambda e: e.start_ns())
        live = peak = 0
        for event in events:
            live += event.nbytes()
            peak = max(peak, live)
        return {"peak_mib": None, "above_mib": peak / 2**20}
    except Exception as exc:  # profiler API differs: report no memory rather than fail the timing
        return {"peak_mib": None, "above_mib": None, "note": f"no CPU memory estimate ({type(exc).__name__})"}


def check_equal_maths(device, dtype) -> float:
    """The pack's patch and the straightforward one agree on a random input (same maths)."""
    import torch
    from stylealign_core import PatchRuntime, SharedAttentionPatch, StyleAlignedOptions

    generator = torch.Generator(device=device).manual_seed(5)
    hidden = torch.randn((2 * 3, 64, 40), generator=generator, device=device)
    hidden = (hidden * 2 + torch.rand((6, 1, 40), generator=generator, device=device)).to(dtype)
    extra = {"cond_or_uncond": list(CHUNKS), "block": ("input", 1), "block_index": 0}
    pack = SharedAttentionPatch(StyleAlignedOptions(reference_index=REFERENCE_INDEX), PatchRuntime())(hidden, hidden, hidden, extra)
    plain = straightforward_patch(hidden, hidden, hidden, extra)
    return max((a.float() - b.float()).abs().max().item() for a, b in zip(pack, plain))


# ----------------------------------------------------------------------------------------- per layer

LAYER_SHAPES = {  # (rows, tokens, channels) of the self-attention inputs of each config's levels
    "sd15-512-ref4": [(10, 4096, 320), (10, 1024, 640), (10, 256, 1280), (10, 64, 1280)],
    "sdxl-1024-ref1": [(4, 4096, 640), (4, 1024, 1280)],
    "sdxl-1024-ref4": [(10, 4096, 640), (10, 1024, 1280)],
}


def layer_timings(device, dtype, calls: int = 50) -> list[str]:
    """The patch maths alone, per layer shape: fused (Triton), eager torch path, floor, straightforward.
    GPU time per call (CUDA events around `calls` back-to-back calls) and host time per call."""
    import torch
    from stylealign_core import batch_layout
    from stylealign_core.maths import fused_adain
    from stylealign_core.maths.fused_adain import torch_share_reference
    from stylealign_core.share_flags import ShareFlags

    flags = ShareFlags(True, True, False, True)
    extra = {"cond_or_uncond": list(CHUNKS)}
    lines = []
    for config, shapes in LAYER_SHAPES.items():
        for rows, tokens, channels in shapes:
            x = torch.randn((rows, tokens, channels), device=device).to(dtype)
            layout = batch_layout(rows, list(CHUNKS), REFERENCE_INDEX)
            fns = {
                "fused": lambda: fused_adain.fused_share_reference(x, layout, flags),
                "eager": lambda: torch_share_reference(x, layout, flags),
                "floor": lambda: floor_patch(x, x, x, extra),
                "straightforward": lambda: straightforward_patch(x, x, x, extra),
            }
            cells = []
            for name, fn in fns.items():
                for _ in range(3):
                    fn()
                synchronize(device)
                host_start = time.perf_counter()
                if device.type == "cuda":
                    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    start.record()
                for _ in range(calls):
                    fn()
                host = (time.perf_counter() - host_start) / calls * 1e6
                if device.type == "cuda":
                    end.record()
                    synchronize(device)
                    gpu = start.elapsed_time(end) / calls * 1e3
                    cells.append(f"{name} {gpu:.0f} us (host {host:.0f} us)")
                else:
                    cells.append(f"{name} {host:.0f} us")
            lines.append(f"layer {config} {rows}x{tokens}x{channels}: " + " | ".join(cells))
    return lines


# ------------------------------------------------------------------------------------------------- main


def fmt_mib(value) -> str:
    return "n/a" if value is None else f"{value:.0f} MiB"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--repeats", type=int, default=None, help="timed forwards per variant (default: cuda 15, cpu 5)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed forwards per variant first (default: cuda 3, cpu 1)")
    parser.add_argument("--configs", default=None, help=f"comma list of {', '.join(CONFIGS)}")
    parser.add_argument("--variants", default=None, help="comma list (default: all for the device)")
    parser.add_argument("--json", default=None, help="write the figures to this file")
    parser.add_argument("--layers", action="store_true", help="also time the patch maths alone per layer shape")
    parser.add_argument(
        "--threads", type=int, default=None,
        help="torch CPU threads (default on the CPU: 1; several threads on a busy machine spin in barriers and "
        "turn other processes' load into noise)",
    )
    args = parser.parse_args(argv)

    import torch

    device_name = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device_name == "cuda" and not torch.cuda.is_available():
        print("CUDA is not available", file=sys.stderr)
        return 2
    threads = args.threads or (1 if device_name == "cpu" else None)
    if threads:
        torch.set_num_threads(threads)
    device = torch.device(device_name)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    repeats = args.repeats or (15 if device.type == "cuda" else 5)
    warmup = args.warmup if args.warmup is not None else (3 if device.type == "cuda" else 1)
    config_names = args.configs.split(",") if args.configs else DEFAULT_CONFIGS[device.type]
    default_variants = ["unpatched", "pack", "straightforward", "floor"]
    if device.type == "cuda":
        default_variants.insert(2, "pack-eager")
    variant_names = args.variants.split(",") if args.variants else default_variants
    if "unpatched" not in variant_names:
        variant_names.insert(0, "unpatched")

    try:
        host = load_comfy(device.type)
    except Exception as exc:
        print(f"ComfyUI host could not be imported ({type(exc).__name__}: {exc}); carry .cache/comfyui-0.3.75 "
              f"or set COMFYUI_PATH, and install what it needs.", file=sys.stderr)
        raise
    fused_adain = import_pack_module("stylealign_core.maths.fused_adain")  # the copy the pack variants switch

    machine = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    print(f"# device: {machine} | torch {torch.__version__} | dtype {str(dtype).replace('torch.', '')} | "
          f"host {host.name} | repeats {repeats} (median), warmup {warmup}, interleaved")
    print(f"# pack vs straightforward patch on one input: max |diff| = {check_equal_maths(device, dtype):.2e}")
    print(f"# fused Triton path: {fused_adain.triton_status()}")

    results = {"device": machine, "torch": torch.__version__, "dtype": str(dtype), "repeats": repeats, "configs": {}}
    if args.layers:
        with torch.inference_mode():
            results["layers"] = layer_timings(device, dtype)
        for line in results["layers"]:
            print(line, flush=True)
        print(f"# fused Triton path: {fused_adain.triton_status()}")
    built = {}
    with torch.inference_mode():
        for name in config_names:
            config = CONFIGS[name]
            key = (config.family, id(config.unet_source))
            if key not in built:
                built.clear()
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                started = time.perf_counter()
                built[key] = build_model(config, device, dtype)
                print(f"# built {config.family} UNet ({built[key][1] / 1e6:.0f}M parameters) in {time.perf_counter() - started:.1f} s")
            patcher, _ = built[key]
            variants = make_variants(patcher, variant_names)
            inputs = make_inputs(config, patcher, device, dtype)
            started = time.perf_counter()
            times = time_interleaved(patcher, variants, inputs, device, repeats, warmup)
            memory = {v.name: peak_memory(patcher, v, inputs, device) for v in variants}
            fused_adain.set_triton_enabled(True)
            elapsed = time.perf_counter() - started
            base = statistics.median(times["unpatched"])
            base_mem = memory["unpatched"]
            rows = {}
            for variant in variants:
                median = statistics.median(times[variant.name])
                mem = memory[variant.name]
                ratio_mem = None
                key_mem = "peak_mib" if mem.get("peak_mib") is not None else "above_mib"
                if mem.get(key_mem) is not None and base_mem.get(key_mem):
                    ratio_mem = mem[key_mem] / base_mem[key_mem]
                # Ratio: median over repetitions of (variant / unpatched in the same repetition); the
                # variants of one repetition ran back to back, so slow drifts cancel.
                ratio = statistics.median(t / u for t, u in zip(times[variant.name], times["unpatched"]))
                rows[variant.name] = {
                    "median_ms": median, "min_ms": min(times[variant.name]), "ratio": ratio,
                    "ratio_of_medians": median / base,
                    "memory": mem, "memory_ratio": ratio_mem, "times_ms": times[variant.name],
                    "memory_above_ratio": (mem["above_mib"] / base_mem["above_mib"])
                    if mem.get("above_mib") is not None and base_mem.get("above_mib") else None,
                }
            results["configs"][name] = rows
            images = 1 + config.targets
            line = [f"{name} [{len(CHUNKS)}x{images} rows, {config.image_size}px, {elapsed:.0f} s]"]
            for variant in variants:
                r = rows[variant.name]
                mem = r["memory"]
                mem_text = fmt_mib(mem.get("peak_mib") if mem.get("peak_mib") is not None else mem.get("above_mib"))
                ratio_mem = "" if r["memory_ratio"] is None else f" x{r['memory_ratio']:.3f}"
                if device.type == "cuda":
                    above = r["memory_above_ratio"]
                    ratio_mem += f" (+{fmt_mib(mem.get('above_mib'))} over resident" + (
                        f" x{above:.3f})" if above is not None else ")")
                line.append(
                    f"{variant.name} {r['median_ms']:.1f} ms (min {r['min_ms']:.1f}) x{r['ratio']:.3f} mem {mem_text}{ratio_mem}"
                )
            print(" | ".join(line), flush=True)

    print(f"# fused Triton path after the runs: {fused_adain.triton_status()}")
    results["triton"] = fused_adain.triton_status()
    print()
    print("| config | unpatched ms | " + " | ".join(f"{n} / unpatched" for n in variant_names if n != "unpatched")
          + " | peak memory " + " | ".join(f"{n}" for n in variant_names if n != "unpatched") + " (ratio) |")
    print("|---" * (2 + 2 * (len(variant_names) - 1)) + "|")
    for name, rows in results["configs"].items():
        cells = [name, f"{rows['unpatched']['median_ms']:.1f}"]
        cells += [f"{rows[n]['ratio']:.3f}" for n in variant_names if n != "unpatched"]
        cells += ["n/a" if rows[n]["memory_ratio"] is None else f"{rows[n]['memory_ratio']:.3f}"
                  for n in variant_names if n != "unpatched"]
        print("| " + " | ".join(cells) + " |")
    if device.type == "cpu":
        print("# CPU memory: peak of live torch CPU allocations during one forward (profiler allocation events), "
              "inputs and weights excluded")
    else:
        print("# CUDA memory ratio: torch.cuda.max_memory_allocated over one forward, weights included")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
