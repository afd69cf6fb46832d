"""Tiny JoyImage (ComfyUI 0.33+): two joint blocks on a Wan 2.1 latent (B, 16, 1, H, W).

The config class forces rope_dim_list [16, 56, 56] (unet_extra_config), so the head dim is 128: two heads
of a 256-wide model. Text features (batch, tokens, 32).
"""

from . import TinyDit, plain_conditioning

JOYIMAGE_CONFIG = {
    "image_model": "joyimage",
    "patch_size": [1, 2, 2],
    "in_channels": 16,
    "out_channels": 16,
    "hidden_size": 256,
    "num_attention_heads": 2,
    "text_dim": 32,
    "mlp_width_ratio": 1.0,
    "num_layers": 2,
}

TINY_DITS = {
    "joyimage": TinyDit("JoyImage", JOYIMAGE_CONFIG, 16, plain_conditioning(32), min_host="0.33", video_latent=True),
}
