"""Tiny Kandinsky 5 Image (ComfyUI 0.33+): one text encoder block, two visual blocks, a Flux latent
(B, 16, H, W), head dim 16 from RoPE axes (4, 6, 6). rope_scale_factor (1, 2, 2) (the video models'
default; the released image model uses 1, 1, 1) so the positions are half-integer steps and the shift by
the image width is read off the model's own table. Text features (batch, tokens, 32) and a pooled
vector (batch, 24). kandinsky5_video_frame: the video models' config class (Kandinsky 5 T2V: a 5-D latent and
the image-to-video channels, zero here, concatenated to it: 33 * 4 input features) on one frame.
"""

from . import TinyDit, plain_conditioning

KANDINSKY5_IMAGE_CONFIG = {
    "image_model": "kandinsky5",
    "in_visual_dim": 16,
    "out_visual_dim": 16,
    "in_text_dim": 32,
    "in_text_dim2": 24,
    "time_dim": 16,
    "model_dim": 32,
    "ff_dim": 64,
    "visual_embed_dim": 64,
    "patch_size": (1, 2, 2),
    "num_text_blocks": 1,
    "num_visual_blocks": 2,
    "axes_dims": (4, 6, 6),
    "rope_scale_factor": (1.0, 2.0, 2.0),
}

TINY_DITS = {
    "kandinsky5_image": TinyDit("Kandinsky5Image", KANDINSKY5_IMAGE_CONFIG, 16, plain_conditioning(32, pooled_dim=24), min_host="0.33"),
    "kandinsky5_video_frame": TinyDit(
        "Kandinsky5", dict(KANDINSKY5_IMAGE_CONFIG, visual_embed_dim=132), 16, plain_conditioning(32, pooled_dim=24),
        min_host="0.33", video_latent=True),
}
