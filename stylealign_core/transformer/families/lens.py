"""Lens (comfy/ldm/lens, ComfyUI 0.33+): dual-stream MMDiT blocks on [image, text].

Each block (LensJointAttention) applies QK RMSNorm per stream, concatenates [image, text], applies RoPE
to the whole sequence (flux.math's apply_rope, EmbedND matrices) and calls attention once with q/k/v as
(B, H, L, D), skip_reshape=True and an additive key mask (B, 1, 1, L) built from the text mask (always
passed, all zeros over the image). Blocks are tagged in transformer_options: block_type "double",
block_index. The latent is already patchified (128-channel latents): one token per latent pixel.
RoPE ids as LensTransformer2DModel builds them (_lens_position_ids, scale_rope): (0, row, col) centred,
rows -(h - h//2) .. h//2 - 1 and the same for columns; text positions start past the image and are
never shared. The mask keeps covering each row's own keys; the appended reference keys are unmasked.
The host has no pre-RoPE hook in these blocks: the override undoes the rotation, AdaINs and redoes it.
Defaults are ours (no paper for Lens; AlignedGen's principles carried over): every block (all are
joint), reference keys shifted by the image width, lambda = 1.1 (untested on real weights).
"""

from __future__ import annotations

from ..call_layout import CallLayout
from ..family import ALIGNEDGEN_KEY_SCALE, TaggedBlocksFamily
from ..rope import grid_ids, image_and_shift_rotations

DOUBLE = "double"


class LensFamily(TaggedBlocksFamily):
    name = "Lens"
    models = ("Lens",)
    host_modules = ("comfy.ldm.lens.model",)
    groups = (DOUBLE,)
    default_groups = (DOUBLE,)
    default_key_scale = ALIGNEDGEN_KEY_SCALE
    width_axis = 2  # ids (frame, row, col)
    uses_pre_rope_hook = False  # the blocks call no attn1 patch

    def block_counts(self, diffusion_model) -> dict[str, int]:
        return {DOUBLE: len(diffusion_model.transformer_blocks)}

    def call_layout(self, diffusion_model, batch, active, x, c_crossattn, transformer_options, kwargs) -> CallLayout:
        rows, cols = x.shape[-2], x.shape[-1]

        def make():
            ids = grid_ids(rows, cols, 3, row_start=-(rows - rows // 2), col_start=-(cols - cols // 2))
            return image_and_shift_rotations(diffusion_model.pos_embed, ids, self.width_axis, x.device)

        image_rotations, shift_rotation = self.cached((rows, cols, x.device), make)
        return CallLayout(
            batch=batch, image_start=0, image_tokens=rows * cols, active=active,
            image_rotations=image_rotations, shift_rotation=shift_rotation,
        )


FAMILY = LensFamily
