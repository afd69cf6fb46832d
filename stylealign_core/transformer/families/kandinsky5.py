"""Kandinsky 5 Image (comfy/ldm/kandinsky5, ComfyUI 0.33+): image-only self-attention, separate cross-attention.

Per forward (Kandinsky5.forward_orig): the text encoder blocks (TransformerEncoderBlock, self-attention
over the text alone: never shared), then the visual blocks (TransformerDecoderBlock), each calling
attention twice: self-attention over the image tokens alone, then cross-attention from the image to the
text. Both reach the backend as (B, H, L, D) with skip_reshape=True, after QK RMSNorm and, for the
self-attention, RoPE (flux.math's apply_rope1 with EmbedND matrices on ids (t, row, col)). The visual blocks
are tagged block_type "double" / block_index, but the self- and cross-attention of one block carry the
same tags (and the text length may equal the image's token count), so the calls are also planned in
order (SelfThenCrossFamily): [text block self-attention] * text blocks, then per visual block [its
self-attention (shared), its cross-attention (never)]; the block index is read from the tags.
RoPE: the model's own rope_encode_3d (rope_scale_factor, rope_options) gives the rotations; its positions
are scaled (not integer columns), so the shift by the image width is read off the table itself
(rope.column_extent_rotation).
Kandinsky 5 video (the same module; a latent with more than one frame, or image-to-video's
time_dim_replace) is refused at sampling: sharing across frames is not what this family defines. A video
model on a one-frame latent makes the same calls and is aligned like the image model.
Defaults are ours (no paper for Kandinsky 5; AlignedGen's principles carried over): every visual block
(all are image-only self-attention), reference keys shifted by the image width, lambda = 1.1 (untested
on real weights).
"""

from __future__ import annotations

import torch

from ...batch_layout import NODE_NAME
from ...errors import StyleAlignedError
from ..call_layout import CallLayout
from ..family import ALIGNEDGEN_KEY_SCALE, SelfThenCrossFamily
from ..rope import column_extent_rotation, heads_axis_first

VISUAL = "visual"


class Kandinsky5Family(SelfThenCrossFamily):
    name = "Kandinsky 5"
    models = ("Kandinsky 5 Image",)
    host_modules = ("comfy.ldm.kandinsky5.model",)
    groups = (VISUAL,)
    default_groups = (VISUAL,)
    default_key_scale = ALIGNEDGEN_KEY_SCALE
    width_axis = 2  # ids (t, row, col)
    image_blocks = VISUAL

    def block_counts(self, diffusion_model) -> dict[str, int]:
        return {VISUAL: len(diffusion_model.visual_transformer_blocks)}

    def call_layout(self, diffusion_model, batch, active, x, c_crossattn, transformer_options, kwargs) -> CallLayout:
        frames = x.shape[2] if x.dim() == 5 else 1
        if frames > 1 or kwargs.get("time_dim_replace") is not None:
            cause = f"a latent of {frames} frames" if frames > 1 else "image-to-video conditioning frames (time_dim_replace)"
            raise StyleAlignedError(
                f"{NODE_NAME}: Kandinsky 5 video is not supported ({cause}): StyleAligned shares one image's tokens "
                f"per target. Use Kandinsky 5 Image (or a one-frame text-to-video latent), or bypass the node for "
                f"this model."
            )
        rows, cols = x.shape[-2], x.shape[-1]
        rope_options = transformer_options.get("rope_options")

        def make():
            with torch.no_grad():
                # The model's own positions (rope_scale_factor or rope_options), in the model's dtype as it
                # builds them: (1, N, 1, D/2, 2, 2).
                table = diffusion_model.rope_encode_3d(
                    1, rows, cols, device=x.device, dtype=x.dtype, transformer_options=transformer_options)
            table = heads_axis_first(table).float()
            return table, column_extent_rotation(table, grid_cols(diffusion_model, cols))

        image_rotations, shift_rotation = self.cached((rows, cols, x.device, x.dtype, repr(rope_options)), make)
        counts = len(diffusion_model.text_transformer_blocks), len(diffusion_model.visual_transformer_blocks)
        return CallLayout(
            batch=batch, image_start=0, image_tokens=image_rotations.shape[2], active=active,
            image_rotations=image_rotations, shift_rotation=shift_rotation,
            call_plan=self.self_then_cross_plan(*counts, image_rotations.shape[2]),
        )


def grid_cols(diffusion_model, cols: int) -> int:
    """Patch columns of a latent `cols` wide, rounded as Kandinsky5.rope_encode_3d does."""
    patch = diffusion_model.patch_size[2]
    return (cols + patch // 2) // patch


FAMILY = Kandinsky5Family
