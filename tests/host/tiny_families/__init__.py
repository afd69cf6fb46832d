"""Tiny random transformer (DiT) models, one module per family: tiny_families/<module>.py carries the same
module name as the family's file in stylealign_core/transformer/families/ and exports
`TINY_DITS: dict[str, TinyDit]` (kind -> how to build it). tests/host/tiny_dit_models.py discovers them,
so tiny_dit(kind) works for any kind and tests/test_dit_families_host.py gives every registered family's
kinds the generic invariants. This package's own module holds what the family modules share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

TEXT_TOKENS = 6


@dataclass(frozen=True)
class TinyDit:
    config_class: str  # name in comfy.supported_models (a host without it skips the kind, saying so)
    unet_config: dict
    latent_channels: int
    conditioning: Callable[..., list]  # conditioning(batch=1, seed=1, tokens=..., guidance=...) -> [[cond, extras]]
    # The host version that added config_class, for the skip reason on older hosts ("" = every host).
    min_host: str = ""
    # The latent has a time axis: (B, C, 1, H, W).
    video_latent: bool = False
    # unet_config -> the config this host's classes accept (fields newer hosts require or older ones lack).
    fit_host: Optional[Callable[[dict], dict]] = None
    # Called on the built diffusion model after random weights (diffusion_model, seed): buffers a
    # checkpoint would fill.
    prepare: Optional[Callable[[torch.nn.Module, int], None]] = None


def plain_conditioning(context_dim: int, pooled_dim: int | None = None, llama: tuple | None = None, default_tokens: int = TEXT_TOKENS):
    """Text features (batch, tokens, context_dim); optionally a pooled vector and per-layer Llama features
    (batch, layers, tokens, dim) under conditioning_llama3."""

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


def guided_conditioning(context_dim: int, pooled_dim: int | None):
    """Text features, the pooled_output key (None for encoders without one) and a guidance value."""

    def make(batch: int = 1, seed: int = 1, tokens: int = TEXT_TOKENS, guidance: float | None = 3.5) -> list:
        generator = torch.Generator().manual_seed(seed)
        # T5-only encoders still give the key, with None (the host's model reads it either way).
        extras = {"pooled_output": torch.randn(batch, pooled_dim, generator=generator) if pooled_dim else None}
        if guidance is not None:
            extras["guidance"] = guidance
        return [[torch.randn(batch, tokens, context_dim, generator=generator), extras]]

    return make
