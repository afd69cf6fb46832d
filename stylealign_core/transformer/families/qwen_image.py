"""Qwen-Image (comfy/ldm/qwen_image): every block joint, text first, RoPE as Flux.

Joint sequence [text, image, edit reference latents]; q/k/v reach the backend as (B, H, L, D) after
QK-norm and RoPE (Attention.forward, skip_reshape=True). Blocks are tagged like Flux's: block_type
"double", block_index. Image ids (0, row - h/2, col - w/2) (centred), text ids diagonal from max(h, w)/2.
Defaults are ours (no paper for Qwen-Image): every block, reference keys shifted by the image width,
lambda = 1.1 (AlignedGen's Flux values carried over; untested on real weights).
"""

from __future__ import annotations

from .flux import ALIGNEDGEN_KEY_SCALE, FluxFamily


class QwenImageFamily(FluxFamily):
    name = "Qwen-Image"
    models = ("Qwen-Image",)
    defaults_from = ""
    groups = ("double",)
    default_groups = ("double",)
    default_key_scale = ALIGNEDGEN_KEY_SCALE
    width_axis = 2
