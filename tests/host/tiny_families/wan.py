"""Tiny Wan models (comfy/ldm/wan WanModel) for the Wan family's tests: text-to-video on the CPU.

Latents are (B, C, frames, H, W): VIDEO_FRAMES latent frames (3, so the generic invariants exercise sharing
in time); one frame is a still image. REFUSED_DITS (image-to-video, VACE) are built only by the Wan tests,
for the refusals. Wan 2.1 T2V and Wan 2.2 14B's experts share one layout
(WAN21_T2V, 16 latent channels); Wan 2.2 5B TI2V is WAN22_T2V (48 channels, the Wan 2.2 VAE). Both
classes exist on ComfyUI 0.3.75 and 0.33.
"""

from __future__ import annotations

from . import TinyDit, plain_conditioning

VIDEO_FRAMES = 3

# head dim 16: rope axes (frame, row, column) = [8, 4, 4] channels, as WanModel derives them.
WAN21_CONFIG = {
    "image_model": "wan2.1",
    "model_type": "t2v",
    "patch_size": (1, 2, 2),
    "text_len": 8,
    "in_dim": 16,
    "dim": 32,
    "ffn_dim": 64,
    "freq_dim": 32,
    "text_dim": 32,
    "out_dim": 16,
    "num_heads": 2,
    "num_layers": 2,
}

WAN22_5B_CONFIG = dict(WAN21_CONFIG, in_dim=48, out_dim=48)

# Image-to-video models, for the refusals: Wan 2.1 I2V (image and mask channels concatenated to the
# latent, CLIP vision features) and VACE (control frames through VACE blocks).
WAN21_I2V_CONFIG = dict(WAN21_CONFIG, model_type="i2v", in_dim=36)
WAN21_VACE_CONFIG = dict(WAN21_CONFIG, model_type="vace", vace_layers=1, vace_in_dim=96)

# WanModel keeps its patch embedding in float32 whatever the model's dtype.
_VIDEO = dict(video_latent=True, frames=VIDEO_FRAMES, keep_float32=("patch_embedding",))
TINY_DITS = {
    "wan21": TinyDit("WAN21_T2V", WAN21_CONFIG, 16, plain_conditioning(32), **_VIDEO),
    "wan22_5b": TinyDit("WAN22_T2V", WAN22_5B_CONFIG, 48, plain_conditioning(32), **_VIDEO),
}

# Built only by the Wan tests (refused models: no generic invariants for them).
REFUSED_DITS = {
    "wan21_i2v": TinyDit("WAN21_I2V", WAN21_I2V_CONFIG, 16, plain_conditioning(32), **_VIDEO),
    "wan21_vace": TinyDit("WAN21_Vace", WAN21_VACE_CONFIG, 16, plain_conditioning(32), **_VIDEO),
}
