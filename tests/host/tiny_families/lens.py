"""Tiny Lens (ComfyUI 0.33+): two dual-stream blocks on a Flux.2-shaped latent (128 channels, one token per
latent pixel). Text features from two "encoder layers" of width 8 side by side (multi_layer_encoder_feature):
(batch, tokens, 16); the model always builds a joint key mask from them.
"""

from . import TinyDit, plain_conditioning

LENS_CONFIG = {
    "image_model": "lens",
    "patch_size": 2,
    "in_channels": 128,
    "out_channels": 32,
    "num_layers": 2,
    "attention_head_dim": 16,
    "num_attention_heads": 2,
    "enc_hidden_dim": 8,
    "axes_dims_rope": (4, 6, 6),
    "selected_layer_index": (0, 1),
}

TINY_DITS = {
    "lens": TinyDit("Lens", LENS_CONFIG, 128, plain_conditioning(16), min_host="0.33"),
}
