"""Qwen-Image (comfy/ldm/qwen_image): every block joint, text first, RoPE as matrices like EmbedND.

Joint sequence [text, image, edit reference latents]; q/k/v reach the backend as (B, H, L, D) after
QK-norm and RoPE (Attention.forward, skip_reshape=True). Blocks are tagged in transformer_options:
block_type "double", block_index. Image ids (0, row - h/2, col - w/2) (centred), text ids diagonal from
max(h, w)/2; the host half reads them from the model's own process_img.
Defaults are ours (no paper for Qwen-Image): every block, reference keys shifted by the image width,
lambda = 1.1 (AlignedGen's values carried over; untested on real weights).
"""

from __future__ import annotations

from ..call_layout import CallLayout
from ..family import ALIGNEDGEN_KEY_SCALE, TaggedBlocksFamily
from ..rope import image_and_shift_rotations

DOUBLE = "double"


class QwenImageFamily(TaggedBlocksFamily):
    name = "Qwen-Image"
    models = ("Qwen-Image",)
    host_modules = ("comfy.ldm.qwen_image.model",)
    groups = (DOUBLE,)
    default_groups = (DOUBLE,)
    default_key_scale = ALIGNEDGEN_KEY_SCALE
    width_axis = 2

    def block_counts(self, diffusion_model) -> dict[str, int]:
        return {DOUBLE: len(diffusion_model.transformer_blocks)}

    def call_layout(self, diffusion_model, batch, active, x, c_crossattn, transformer_options, kwargs) -> CallLayout:
        latent = x if x.dim() == 5 else x.unsqueeze(2)  # (B, C, T, H, W) as the model reads it

        def make():
            ids = diffusion_model.process_img(latent[:1])[1].float()  # the model's own ids, centred
            return image_and_shift_rotations(diffusion_model.pe_embedder, ids, self.width_axis, x.device)

        image_rotations, shift_rotation = self.cached((tuple(latent.shape[-2:]), x.device), make)
        return CallLayout(
            batch=batch, image_start=c_crossattn.shape[1], image_tokens=image_rotations.shape[2], active=active,
            image_rotations=image_rotations, shift_rotation=shift_rotation,
        )


FAMILY = QwenImageFamily
