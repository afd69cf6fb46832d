"""Tiny random transformer (DiT) models built in process from the host's own classes, on the CPU.

One entry per family in TINY_DITS: the supported_models config class, a small unet_config, and how to
make conditioning of the right shape by hand (these families' text encoders cannot be built small).
Issue 10's families add entries here the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .tiny_models import _randomise

TEXT_TOKENS = 6


@dataclass(frozen=True)
class TinyDit:
    config_class: str  # name in comfy.supported_models
    unet_config: dict
    latent_channels: int
    conditioning: Callable[..., list]


def _flux_conditioning(context_dim: int, pooled_dim: int | None):
    def make(batch: int = 1, seed: int = 1, tokens: int = TEXT_TOKENS, guidance: float | None = 3.5) -> list:
        generator = torch.Generator().manual_seed(seed)
        # T5-only encoders (Chroma) still give the key, with None (the host's model reads it either way).
        extras = {"pooled_output": torch.randn(batch, pooled_dim, generator=generator) if pooled_dim else None}
        if guidance is not None:
            extras["guidance"] = guidance
        return [[torch.randn(batch, tokens, context_dim, generator=generator), extras]]

    return make


FLUX_CONFIG = {
    "image_model": "flux",
    "guidance_embed": True,
    "in_channels": 16,
    "out_channels": 16,
    "patch_size": 2,
    "vec_in_dim": 24,
    "context_in_dim": 32,
    "hidden_size": 48,
    "mlp_ratio": 2.0,
    "num_heads": 3,
    "depth": 1,
    "depth_single_blocks": 2,
    "axes_dim": [4, 6, 6],
    "theta": 10000,
    "qkv_bias": True,
}

CHROMA_CONFIG = {
    "image_model": "chroma",
    "in_channels": 64,
    "out_channels": 64,
    "patch_size": 2,
    "context_in_dim": 32,
    "hidden_size": 48,
    "mlp_ratio": 2.0,
    "num_heads": 3,
    "depth": 1,
    "depth_single_blocks": 2,
    "axes_dim": [4, 6, 6],
    "theta": 10000,
    "qkv_bias": True,
    "in_dim": 64,
    "out_dim": 48,
    "hidden_dim": 32,
    "n_layers": 1,
}

# Flux.2: four RoPE axes (index, row, col, text position), theta 2000, patch 1 on a 128-channel latent,
# global modulation, no pooled vector; the model pads text to 512 tokens.
FLUX2_CONFIG = {
    "image_model": "flux2",
    "guidance_embed": True,
    "in_channels": 128,
    "out_channels": 128,
    "patch_size": 1,
    "vec_in_dim": None,
    "context_in_dim": 32,
    "hidden_size": 48,
    "mlp_ratio": 3.0,
    "num_heads": 3,
    "depth": 1,
    "depth_single_blocks": 2,
    "axes_dim": [4, 4, 4, 4],
    "theta": 2000,
    "qkv_bias": False,
    "ops_bias": False,
    "global_modulation": True,
    "mlp_silu_act": True,
    "default_ref_method": "index",
    "ref_index_scale": 10.0,
}

# A family the pack does not patch (for the node's error).
AURAFLOW_CONFIG = {
    "cond_seq_dim": 32,
    "in_channels": 4,
    "out_channels": 4,
    "patch_size": 2,
    "dim": 32,
    "n_layers": 2,
    "n_double_layers": 1,
    "n_heads": 2,
    "global_conddim": 32,
    "max_seq": 64,
}

def _plain_conditioning(context_dim: int, pooled_dim: int | None = None, llama: tuple | None = None, default_tokens: int = TEXT_TOKENS):
    """Text features (batch, tokens, context_dim); optionally a pooled vector and HiDream's per-layer Llama
    features (batch, layers, tokens, dim) under conditioning_llama3."""

    def make(batch: int = 1, seed: int = 1, tokens: int = default_tokens, guidance=None) -> list:
        generator = torch.Generator().manual_seed(seed)
        extras = {}
        if pooled_dim:
            extras["pooled_output"] = torch.randn(batch, pooled_dim, generator=generator)
        if llama:
            layers, llama_tokens, llama_dim = llama
            extras["conditioning_llama3"] = torch.randn(batch, layers, llama_tokens, llama_dim, generator=generator)
        return [[torch.randn(batch, tokens, context_dim, generator=generator), extras]]

    return make


# Qwen-Image: every block joint, text first, centred RoPE ids; a Wan 2.1 latent (B, 16, 1, H, W).
QWEN_IMAGE_CONFIG = {
    "image_model": "qwen_image",
    "patch_size": 2,
    "in_channels": 64,
    "out_channels": 16,
    "num_layers": 2,
    "attention_head_dim": 16,
    "num_attention_heads": 2,
    "joint_attention_dim": 32,
    "axes_dims_rope": [4, 6, 6],
}

# SD3.5 Medium-like MMDiT-X: hidden 64 * depth, heads = depth, an image-only attention in block 1.
SD3_CONFIG = {
    "in_channels": 16,
    "out_channels": 16,
    "patch_size": 2,
    "depth": 2,
    "input_size": None,
    "adm_in_channels": 24,
    "context_embedder_config": {"target": "torch.nn.Linear", "params": {"in_features": 32, "out_features": 128}},
    "num_patches": 256,
    "pos_embed_max_size": 16,
    "pos_embed_scaling_factor": None,
    "qk_norm": "rms",
    "x_block_self_attn_layers": [1],
}

# HiDream: image first; rope axes cover half the head dim (4 + 2 + 2 = 8 of 16: the partial-RoPE path).
HIDREAM_CONFIG = {
    "image_model": "hidream",
    "patch_size": 2,
    "in_channels": 16,
    "out_channels": 16,
    "num_layers": 1,
    "num_single_layers": 2,
    "attention_head_dim": 16,
    "num_attention_heads": 2,
    "caption_channels": [32, 24],
    "text_emb_dim": 24,
    "num_routed_experts": 2,
    "num_activated_experts": 1,
    "axes_dims_rope": [4, 2, 2],
    "max_resolution": [16, 16],
    "llama_layers": [0, 1, 1],
}

# Lumina 2: grouped K/V heads (3 query heads, 1 K/V head), no padding.
LUMINA2_CONFIG = {
    "image_model": "lumina2",
    "patch_size": 2,
    "in_channels": 16,
    "dim": 48,
    "cap_feat_dim": 32,
    "n_layers": 2,
    "n_refiner_layers": 1,
    "n_heads": 3,
    "n_kv_heads": 1,
    "multiple_of": 16,
    "qk_norm": True,
    "axes_dims": [4, 6, 6],
    "axes_lens": [300, 64, 64],
    "rope_theta": 10000.0,
}

# Z-Image: Z-Image modulation (needs dim >= 256), caption and image tokens padded to multiples of 32.
Z_IMAGE_CONFIG = {
    "image_model": "lumina2",
    "patch_size": 2,
    "in_channels": 16,
    "dim": 256,
    "cap_feat_dim": 32,
    "n_layers": 2,
    "n_refiner_layers": 1,
    "n_heads": 8,
    "n_kv_heads": 8,
    "multiple_of": 16,
    "ffn_dim_multiplier": 8.0 / 3.0,
    "qk_norm": True,
    "axes_dims": [8, 12, 12],
    "axes_lens": [1536, 64, 64],
    "rope_theta": 256.0,
    "z_image_modulation": True,
    "time_scale": 1000.0,
    "pad_tokens_multiple": 32,
}

# A video family the pack does not patch (for the node's error; built, never sampled).
WAN21_CONFIG = {
    "image_model": "wan2.1",
    "model_type": "t2v",
    "patch_size": (1, 2, 2),
    "text_len": 8,
    "in_dim": 16,
    "dim": 32,
    "ffn_dim": 64,
    "freq_dim": 32,
    "text_dim": 32,
    "out_dim": 16,
    "num_heads": 2,
    "num_layers": 1,
}

TINY_DITS = {
    "flux": TinyDit("Flux", FLUX_CONFIG, 16, _flux_conditioning(32, 24)),
    "chroma": TinyDit("Chroma", CHROMA_CONFIG, 16, _flux_conditioning(32, None)),
    "flux2": TinyDit("Flux2", FLUX2_CONFIG, 128, _flux_conditioning(32, None)),
    "auraflow": TinyDit("AuraFlow", AURAFLOW_CONFIG, 4, _flux_conditioning(32, None)),
    "wan21": TinyDit("WAN21_T2V", WAN21_CONFIG, 16, _plain_conditioning(32)),
    "qwen_image": TinyDit("QwenImage", QWEN_IMAGE_CONFIG, 16, _plain_conditioning(32)),
    "sd3": TinyDit("SD3", SD3_CONFIG, 16, _plain_conditioning(32, pooled_dim=24)),
    "hidream": TinyDit("HiDream", HIDREAM_CONFIG, 16, _plain_conditioning(32, pooled_dim=24, llama=(2, 5, 24))),
    "lumina2": TinyDit("Lumina2", LUMINA2_CONFIG, 16, _plain_conditioning(32)),
    # 7 caption tokens: Z-Image pads them to 32.
    "z_image": TinyDit("ZImage", Z_IMAGE_CONFIG, 16, _plain_conditioning(32, default_tokens=7)),
}

# LongCat-Image (ComfyUI 0.33+): loads as Flux (no guidance, no pooled vector, text ids on two axes) and
# adds rope_options offsets inside the model call.
LONGCAT_CONFIG = dict(FLUX_CONFIG, guidance_embed=False, vec_in_dim=None, txt_ids_dims=[1, 2])
TINY_DITS["longcat"] = TinyDit("LongCatImage", LONGCAT_CONFIG, 16, _flux_conditioning(32, None))

# Fields that newer hosts require and older ones do not know (ComfyUI 0.8+: FluxParams.txt_ids_dims,
# ChromaParams.txt_ids_dims and vec_in_dim); each is added only where the host's params dataclass declares
# it, so one tiny config builds on both hosts. The values are what the host's own detection gives these
# families (Flux.2 numbers its text tokens on the fourth RoPE axis, as 0.3.75 hard-codes).
HOST_DEPENDENT_FIELDS = {
    "flux": ("comfy.ldm.flux.model", "FluxParams", {"txt_ids_dims": []}),
    "flux2": ("comfy.ldm.flux.model", "FluxParams", {"txt_ids_dims": [3]}),
    "chroma": ("comfy.ldm.chroma.model", "ChromaParams", {"txt_ids_dims": [], "vec_in_dim": None}),
}


def host_unet_config(kind: str) -> dict:
    """TINY_DITS[kind].unet_config plus the fields this host's params dataclass requires."""
    import dataclasses
    import importlib

    config = dict(TINY_DITS[kind].unet_config)
    if kind in HOST_DEPENDENT_FIELDS:
        module, params_class, extra = HOST_DEPENDENT_FIELDS[kind]
        declared = {field.name for field in dataclasses.fields(getattr(importlib.import_module(module), params_class))}
        config.update({name: value for name, value in extra.items() if name in declared and name not in config})
    if config.get("image_model") in ("flux", "flux2", "chroma"):
        # A config written for a newer host (LongCat-Image's txt_ids_dims) loses what this host does not know.
        declared = _params_fields(config["image_model"])
        config = {key: value for key, value in config.items() if key in declared or key not in HOST_ONLY_FIELDS}
    return config


HOST_ONLY_FIELDS = ("txt_ids_dims", "vec_in_dim")


def _params_fields(image_model: str) -> set:
    import dataclasses

    if image_model == "chroma":
        from comfy.ldm.chroma.model import ChromaParams as params
    else:
        from comfy.ldm.flux.model import FluxParams as params
    return {field.name for field in dataclasses.fields(params)}


# Families whose latent has a time axis: (B, C, 1, H, W).
VIDEO_SHAPED_LATENTS = {"qwen_image"}


def tiny_dit(kind: str, seed: int = 0, dtype: torch.dtype = torch.float32):
    """A ModelPatcher around a tiny random model of the family `kind` (a key of TINY_DITS) on the CPU."""
    import comfy.model_patcher
    import comfy.supported_models

    spec = TINY_DITS[kind]
    model_config = getattr(comfy.supported_models, spec.config_class)(host_unet_config(kind))
    model_config.set_inference_dtype(dtype, None)
    model = model_config.get_model({}, device=torch.device("cpu"))
    _randomise(model.diffusion_model, seed)
    # SD3's absolute position embedding is a checkpoint buffer left uninitialised (torch.empty).
    pos_embed = getattr(model.diffusion_model, "pos_embed", None)
    if torch.is_tensor(pos_embed):
        with torch.no_grad():
            pos_embed.copy_(0.5 * torch.randn(pos_embed.shape, generator=torch.Generator().manual_seed(seed + 1)))
    model.diffusion_model.to(dtype)
    return comfy.model_patcher.ModelPatcher(model, load_device=torch.device("cpu"), offload_device=torch.device("cpu"))


def dit_conditioning(kind: str, **kwargs) -> list:
    return TINY_DITS[kind].conditioning(**kwargs)


def dit_noise(kind: str, batch: int, seed: int = 0, size: int = 8) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(batch, TINY_DITS[kind].latent_channels, size, size, generator=generator)
    return noise.unsqueeze(2) if kind in VIDEO_SHAPED_LATENTS else noise


class StandInT5Clip:
    """A CLIP object shaped like the host's Flux (T5-XXL + CLIP-L pooled) or Chroma (T5 alone) encoders:
    their text encoders cannot be built small, so each prompt maps to fixed random features of the tiny
    models' widths. Flux.1 pads T5 tokens to 256 (min_length); Chroma does not pad (one token per word
    here) and has no pooled output."""

    def __init__(self, kind: str, context_dim: int = 32, pooled_dim: int = 24, padded_tokens: int = 256):
        self.kind = kind
        self.context_dim = context_dim
        self.pooled_dim = pooled_dim
        self.padded_tokens = padded_tokens

    def tokenize(self, text: str) -> dict:
        return {"t5xxl": text.split()}

    def encode_from_tokens_scheduled(self, tokens: dict) -> list:
        words = tokens["t5xxl"]
        generator = torch.Generator().manual_seed(sum(ord(c) * (i + 1) for i, c in enumerate(" ".join(words))) % 2**31)
        length = max(self.padded_tokens, len(words)) if self.kind == "flux" else len(words)
        cond = torch.randn(1, length, self.context_dim, generator=generator)
        pooled = torch.randn(1, self.pooled_dim, generator=generator) if self.kind == "flux" else None
        return [[cond, {"pooled_output": pooled}]]
