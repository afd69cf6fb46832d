"""Tiny Anima (ComfyUI 0.33+): two Cosmos Predict2 blocks (heads of 24: RoPE axes t 8, row 8, col 8) on a
Wan 2.1 latent (B, 16, 1, H, W), the released model's NTK extrapolation (row and column ratio 4) and fixed
fps. Text features (batch, tokens, 32) go straight to the cross-attention (the LLM adapter, which the
host class builds at its full fixed size, runs only on token ids while the conditioning is prepared).
"""

from . import TinyDit, plain_conditioning

ANIMA_CONFIG = {
    "image_model": "anima",
    "max_img_h": 240,
    "max_img_w": 240,
    "max_frames": 128,
    "in_channels": 16,
    "out_channels": 16,
    "patch_spatial": 2,
    "patch_temporal": 1,
    "concat_padding_mask": True,
    "model_channels": 48,
    "num_blocks": 2,
    "num_heads": 2,
    "mlp_ratio": 1.0,
    "crossattn_emb_channels": 32,
    "pos_emb_cls": "rope3d",
    "pos_emb_learnable": True,
    "pos_emb_interpolation": "crop",
    "min_fps": 1,
    "max_fps": 30,
    "use_adaln_lora": True,
    "adaln_lora_dim": 16,
    "extra_per_block_abs_pos_emb": False,
    "rope_h_extrapolation_ratio": 4.0,
    "rope_w_extrapolation_ratio": 4.0,
    "rope_t_extrapolation_ratio": 1.0,
    "rope_enable_fps_modulation": False,
}

TINY_DITS = {
    "anima": TinyDit("Anima", ANIMA_CONFIG, 16, plain_conditioning(32), min_host="0.33", video_latent=True),
}
