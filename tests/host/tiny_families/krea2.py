"""Tiny Krea 2 (ComfyUI 0.33+): grouped-query attention (4 query heads, 2 K/V heads of 16 channels: RoPE
axes 4 + 6 + 6), a 2-layer text-fusion adapter on 2 stacked text-encoder layers, a Wan 2.1 latent
(B, 16, 1, H, W) at patch 2."""

from __future__ import annotations

from . import TinyDit, plain_conditioning

KREA2_CONFIG = {
    "image_model": "krea2",
    "features": 64,
    "heads": 4,
    "kvheads": 2,
    "multiplier": 2,
    "layers": 2,
    "patch": 2,
    "channels": 16,
    "txtdim": 32,
    "txtlayers": 2,
    "txtheads": 2,
    "txtkvheads": 2,
    "theta": 1000.0,
}

# The conditioning stacks the text encoder's layers: (batch, tokens, txtlayers * txtdim).
TINY_DITS = {
    "krea2": TinyDit("Krea2", KREA2_CONFIG, 16, plain_conditioning(KREA2_CONFIG["txtlayers"] * KREA2_CONFIG["txtdim"]),
                     min_host="0.33", video_latent=True),
}
