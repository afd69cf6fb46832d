"""Tiny PixelDiT and PiD (ComfyUI 0.33+): pixel space (B, 3, H, W), patch 2, two joint patch blocks (heads
of 16) and one pixel block whose attention heads are 12 wide (another rotation table than the patch
blocks'). Text features (batch, tokens, 32), at most 8 tokens. PiD adds its LQ branch (a 16-channel
latent to decode, its degradation sigma) and NTK-scaled RoPE against a reference grid of 8 patches.
"""

import torch

from . import TinyDit, plain_conditioning

PIXELDIT_CONFIG = {
    "image_model": "pixeldit_t2i",
    "in_channels": 3,
    "num_groups": 2,
    "hidden_size": 32,
    "pixel_hidden_size": 4,
    "pixel_attn_hidden_size": 24,
    "pixel_num_groups": 2,
    "patch_depth": 2,
    "pixel_depth": 1,
    "patch_size": 2,
    "txt_embed_dim": 32,
    "txt_max_length": 8,
}

PID_CONFIG = dict(
    PIXELDIT_CONFIG, image_model="pid", lq_latent_channels=16, lq_hidden_dim=8, lq_num_res_blocks=1, lq_interval=1,
    pit_lq_inject=True, rope_ref_h=16, rope_ref_w=16,
)


def _pid_conditioning(context_dim: int):
    text = plain_conditioning(context_dim)

    def make(batch: int = 1, seed: int = 1, **kwargs) -> list:
        [[features, extras]] = text(batch=batch, seed=seed, **kwargs)
        generator = torch.Generator().manual_seed(seed + 100)
        extras = dict(extras, lq_latent=torch.randn(batch, 16, 2, 2, generator=generator), degrade_sigma=torch.tensor([0.2]))
        return [[features, extras]]

    return make


TINY_DITS = {
    "pixeldit": TinyDit("PixelDiTT2I", PIXELDIT_CONFIG, 3, plain_conditioning(32), min_host="0.33"),
    "pid": TinyDit("PiD", PID_CONFIG, 3, _pid_conditioning(32), min_host="0.33"),
}
