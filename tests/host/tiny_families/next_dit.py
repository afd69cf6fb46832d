"""Tiny Lumina 2 and Z-Image models (comfy/ldm/lumina NextDiT)."""

from . import TinyDit, plain_conditioning

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

TINY_DITS = {
    "lumina2": TinyDit("Lumina2", LUMINA2_CONFIG, 16, plain_conditioning(32)),
    # 7 caption tokens: Z-Image pads them to 32.
    "z_image": TinyDit("ZImage", Z_IMAGE_CONFIG, 16, plain_conditioning(32, default_tokens=7)),
}
