"""A tiny HiDream-I1 model (comfy/ldm/hidream): image first; rope axes cover half the head dim
(4 + 2 + 2 = 8 of 16: the partial-RoPE path)."""

from . import TinyDit, plain_conditioning

HIDREAM_CONFIG = {
    "image_model": "hidream",
    "patch_size": 2,
    "in_channels": 16,
    "out_channels": 16,
    "num_layers": 1,
    "num_single_layers": 2,
    "attention_head_dim": 16,
    "num_attention_heads": 2,
    "caption_channels": [32, 24],
    "text_emb_dim": 24,
    "num_routed_experts": 2,
    "num_activated_experts": 1,
    "axes_dims_rope": [4, 2, 2],
    "max_resolution": [16, 16],
    "llama_layers": [0, 1, 1],
}

TINY_DITS = {
    "hidream": TinyDit("HiDream", HIDREAM_CONFIG, 16, plain_conditioning(32, pooled_dim=24, llama=(2, 5, 24))),
}
