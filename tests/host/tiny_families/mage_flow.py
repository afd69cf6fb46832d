"""Tiny MageFlow (ComfyUI 0.33+): the joint blocks of comfy/ldm/qwen_image, 2 heads of 16 channels (RoPE
axes 4 + 6 + 6), patch 1 on a 128-channel Flux.2 latent (one token per latent pixel)."""

from __future__ import annotations

from . import TinyDit, plain_conditioning

MAGE_FLOW_CONFIG = {
    "image_model": "mage_flow",
    "in_channels": 128,
    "out_channels": 128,
    "num_layers": 2,
    "attention_head_dim": 16,
    "num_attention_heads": 2,
    "joint_attention_dim": 32,
    "axes_dims_rope": [4, 6, 6],
}

TINY_DITS = {
    "mage_flow": TinyDit("MageFlow", MAGE_FLOW_CONFIG, 128, plain_conditioning(32), min_host="0.33"),
}
