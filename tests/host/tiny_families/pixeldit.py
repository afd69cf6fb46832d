"""Tiny PixelDiT (ComfyUI 0.33+): pixel space (B, 3, H, W), patch 2, two joint patch blocks (heads of 16)
and one pixel block whose attention heads are 12 wide (another rotation table than the patch blocks').
Text features (batch, tokens, 32), at most 8 tokens.
"""

from ..tiny_dit_models import TinyDit, _plain_conditioning

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

TINY_DITS = {
    "pixeldit": TinyDit("PixelDiTT2I", PIXELDIT_CONFIG, 3, _plain_conditioning(32)),
}
