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

TINY_DITS = {
    "flux": TinyDit("Flux", FLUX_CONFIG, 16, _flux_conditioning(32, 24)),
    "chroma": TinyDit("Chroma", CHROMA_CONFIG, 16, _flux_conditioning(32, None)),
    "flux2": TinyDit("Flux2", FLUX2_CONFIG, 128, _flux_conditioning(32, None)),
    "auraflow": TinyDit("AuraFlow", AURAFLOW_CONFIG, 4, _flux_conditioning(32, None)),
}


def tiny_dit(kind: str, seed: int = 0, dtype: torch.dtype = torch.float32):
    """A ModelPatcher around a tiny random model of the family `kind` (a key of TINY_DITS) on the CPU."""
    import comfy.model_patcher
    import comfy.supported_models

    spec = TINY_DITS[kind]
    model_config = getattr(comfy.supported_models, spec.config_class)(dict(spec.unet_config))
    model_config.set_inference_dtype(dtype, None)
    model = model_config.get_model({}, device=torch.device("cpu"))
    _randomise(model.diffusion_model, seed)
    model.diffusion_model.to(dtype)
    return comfy.model_patcher.ModelPatcher(model, load_device=torch.device("cpu"), offload_device=torch.device("cpu"))


def dit_conditioning(kind: str, **kwargs) -> list:
    return TINY_DITS[kind].conditioning(**kwargs)


def dit_noise(kind: str, batch: int, seed: int = 0, size: int = 8) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, TINY_DITS[kind].latent_channels, size, size, generator=generator)


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
