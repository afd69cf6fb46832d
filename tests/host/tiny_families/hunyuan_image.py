"""Tiny HunyuanImage 2.1: double and single blocks, a 2D patch of 1 on a 64-channel latent, 3 heads of
16 channels on two RoPE axes (8 + 8, theta 256), the ByT5 glyph-text mapper (its input width, 1472, is
fixed by the host), guidance embedding."""

from __future__ import annotations

import dataclasses
import importlib

import torch

from . import TEXT_TOKENS, TinyDit

GLYPH_TOKENS = 3
BYT5_WIDTH = 1472

HUNYUAN_IMAGE_CONFIG = {
    "image_model": "hunyuan_video",
    "in_channels": 64,
    "out_channels": 64,
    "patch_size": [1, 1],
    "vec_in_dim": None,
    "context_in_dim": 32,
    "hidden_size": 48,
    "mlp_ratio": 2.0,
    "num_heads": 3,
    "depth": 1,
    "depth_single_blocks": 2,
    "axes_dim": [8, 8],
    "theta": 256,
    "qkv_bias": True,
    "guidance_embed": True,
    "byt5": True,
    "meanflow": False,
    "use_cond_type_embedding": False,
    "vision_in_dim": None,
    "meanflow_sum": False,  # ComfyUI 0.33's field (0.3.75 lacks it)
}


def fit_host(config: dict) -> dict:
    """The config less the fields this host's HunyuanVideoParams does not declare."""
    params = importlib.import_module("comfy.ldm.hunyuan_video.model").HunyuanVideoParams
    declared = {field.name for field in dataclasses.fields(params)} | {"image_model"}
    return {key: value for key, value in config.items() if key in declared}


def hunyuan_image_conditioning(batch: int = 1, seed: int = 1, tokens: int = TEXT_TOKENS, guidance=None, glyph_tokens: int = GLYPH_TOKENS) -> list:
    """Text features (batch, tokens, 32) and ByT5 glyph features under conditioning_byt5small."""
    generator = torch.Generator().manual_seed(seed)
    text = torch.randn(batch, tokens, HUNYUAN_IMAGE_CONFIG["context_in_dim"], generator=generator)
    extras = {"conditioning_byt5small": torch.randn(batch, glyph_tokens, BYT5_WIDTH, generator=generator)} if glyph_tokens else {}
    return [[text, extras]]


TINY_DITS = {
    "hunyuan_image": TinyDit("HunyuanImage21", HUNYUAN_IMAGE_CONFIG, 64, hunyuan_image_conditioning, fit_host=fit_host),
}
