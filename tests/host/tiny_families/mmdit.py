"""A tiny SD3.5 Medium-like MMDiT-X model (comfy/ldm/modules/diffusionmodules/mmdit.py): hidden 64 * depth,
heads = depth, an image-only attention in block 1."""

import torch

from . import TinyDit, plain_conditioning

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


def fill_position_embedding(diffusion_model, seed: int) -> None:
    """The absolute position embedding is a checkpoint buffer left uninitialised (torch.empty)."""
    with torch.no_grad():
        pos_embed = diffusion_model.pos_embed
        pos_embed.copy_(0.5 * torch.randn(pos_embed.shape, generator=torch.Generator().manual_seed(seed + 1)))


TINY_DITS = {
    "sd3": TinyDit("SD3", SD3_CONFIG, 16, plain_conditioning(32, pooled_dim=24), prepare=fill_position_embedding),
}
