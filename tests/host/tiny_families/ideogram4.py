"""Tiny Ideogram 4 (ComfyUI 0.33+): the host's Ideogram4 config class with a small transformer.

Two single-stream layers, 2 heads of 16 channels (split-half MRoPE over 8 channel pairs: mrope_section
(4, 2, 2) puts rows on pairs 1, 4 and columns on pairs 2, 5), the real 128-channel latent (Flux.2's format,
one token per latent cell). The text features are (batch, tokens, 24) with an attention mask whose last
two tokens are padding, so the model's block-diagonal positional mask is in every call.
"""

from __future__ import annotations

import torch

from . import TinyDit

TEXT_TOKENS = 6
PADDING_TOKENS = 2
LLM_FEATURES = 24

IDEOGRAM4_CONFIG = {
    "image_model": "ideogram4",
    "in_channels": 128,
    "num_layers": 2,
    "num_attention_heads": 2,
    "attention_head_dim": 16,
    "intermediate_size": 64,
    "adaln_dim": 16,
    "llm_features_dim": LLM_FEATURES,
    "rope_theta": 10000.0,
    "mrope_section": [4, 2, 2],
    "norm_eps": 1e-5,
}


def ideogram4_conditioning(batch: int = 1, seed: int = 1, tokens: int = TEXT_TOKENS, guidance=None, padding: int = PADDING_TOKENS) -> list:
    """Text features (batch, tokens, 24) and, with padding > 0, the encoder's attention mask (the last
    `padding` tokens 0); padding=None: no text at all (the model's image-only path)."""
    if padding is None:
        return [[None, {}]]
    generator = torch.Generator().manual_seed(seed)
    extras = {}
    if padding:
        mask = torch.ones(batch, tokens, dtype=torch.long)
        mask[:, tokens - padding:] = 0
        extras["attention_mask"] = mask
    return [[torch.randn(batch, tokens, LLM_FEATURES, generator=generator), extras]]


TINY_DITS = {
    # 128 latent channels: Flux.2's latent format (already 2x2-patchified).
    "ideogram4": TinyDit("Ideogram4", IDEOGRAM4_CONFIG, 128, ideogram4_conditioning),
}
