"""A tiny Qwen-Image model (comfy/ldm/qwen_image): every block joint, text first, centred RoPE ids, a Wan
2.1 latent (B, 16, 1, H, W)."""

from . import TinyDit, plain_conditioning

QWEN_IMAGE_CONFIG = {
    "image_model": "qwen_image",
    "patch_size": 2,
    "in_channels": 64,
    "out_channels": 16,
    "num_layers": 2,
    "attention_head_dim": 16,
    "num_attention_heads": 2,
    "joint_attention_dim": 32,
    "axes_dims_rope": [4, 6, 6],
}

TINY_DITS = {
    "qwen_image": TinyDit("QwenImage", QWEN_IMAGE_CONFIG, 16, plain_conditioning(32), video_latent=True),
}
