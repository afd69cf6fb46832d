"""PixelDiT and PiD (comfy/ldm/pixeldit, ComfyUI 0.33+): pixel-space DiT, joint patch blocks then pixel blocks.

Per forward (PixDiT_T2I._forward): the patch-level MMDiT blocks (MMDiTBlockT2I) call attention once each
on [text, image patches] with q/k/v as (B, H, L, D), skip_reshape=True and skip_output_reshape=True,
after per-stream QK RMSNorm and RoPE (image: 2-D RoPE whose channel pairs alternate between the x and y
axes; text: 1-D RoPE); then the pixel-level blocks (PiTBlock) compress each patch's pixels to one token
and call an image-only attention (RotaryAttention, (B, H, L, D), skip_reshape=True) with their own head
width and the same 2-D positions. Nothing is tagged in transformer_options: the calls are planned in order
(CallLayout.call_plan), each stage with its own image range and its own rotation table.
Positions: precompute_freqs_cis_2d stretches each axis over 0..16 whatever the resolution (rope_options
scale/shift and PiD's NTK theta honoured): the model's own table builders (_fetch_patch_pos and the pixel
blocks' _fetch_pos) give the rotations, and the shift by the image width is read off the table
(rope.column_extent_rotation; 16 * W / (W - 1) position units for W patch columns).
PiD (PidNet, the 4-step pixel decoder of another model's latent) runs the same blocks with its LQ
features added before them, so it is covered the same way.
Defaults are ours (no paper for PixelDiT; AlignedGen's principles carried over): every block of both
stages (the patch blocks are joint, the pixel blocks image-only), reference keys shifted by the image
width, lambda = 1.1 (untested on real weights).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from ..call_layout import CallLayout
from ..family import ALIGNEDGEN_KEY_SCALE, PlannedBlocksFamily, latent_grid
from ..rope import column_extent_rotation

PATCH = "patch"
PIXEL = "pixel"


class PixelDiTFamily(PlannedBlocksFamily):
    name = "PixelDiT"
    models = ("PixelDiT", "PiD")
    host_modules = ("comfy.ldm.pixeldit.model", "comfy.ldm.pixeldit.pid")
    groups = (PATCH, PIXEL)
    default_groups = (PATCH, PIXEL)
    default_key_scale = ALIGNEDGEN_KEY_SCALE
    width_axis = 0  # precompute_freqs_cis_2d's x (width) axis; the shift is read off the table itself

    def block_counts(self, diffusion_model) -> dict[str, int]:
        return {PATCH: len(diffusion_model.patch_blocks), PIXEL: len(diffusion_model.pixel_blocks)}

    def call_layout(self, diffusion_model, batch, active, x, c_crossattn, transformer_options, kwargs) -> CallLayout:
        rows, cols = latent_grid(x, diffusion_model.patch_size)
        rope_options = transformer_options.get("rope_options") or {}
        text_tokens = min(c_crossattn.shape[1], diffusion_model.txt_max_length)

        def make():
            with torch.no_grad():
                tables = {PATCH: diffusion_model._fetch_patch_pos(rows, cols, x.device, x.dtype, **rope_options)}
                if len(diffusion_model.pixel_blocks):
                    tables[PIXEL] = diffusion_model.pixel_blocks[0]._fetch_pos(rows, cols, x.device, x.dtype, **rope_options)
            tables = {stage: table[None, None].float() for stage, table in tables.items()}  # (1, 1, L, D/2, 2, 2)
            return {stage: (table, column_extent_rotation(table, cols)) for stage, table in tables.items()}

        rotations = self.cached((rows, cols, x.device, x.dtype, repr(rope_options)), make)
        counts = self.block_counts(diffusion_model)
        return StagedCallLayout(
            batch=batch, image_start=text_tokens, image_tokens=rows * cols, active=active,
            image_rotations=rotations[PATCH][0], shift_rotation=rotations[PATCH][1],
            call_plan=call_plan(counts[PATCH], counts[PIXEL], text_tokens, rows * cols),
            stage_rotations=rotations,
        )


@dataclass
class StagedCallLayout(CallLayout):
    """A CallLayout whose planned calls take the rotations of their stage (the pixel blocks' heads are of
    another width than the patch blocks')."""

    stage_rotations: dict = field(default_factory=dict, repr=False)

    def for_call(self, call_index: int) -> CallLayout:
        view = super().for_call(call_index)
        block = self.planned_block(call_index)
        if view is self or block is None or block[0] not in self.stage_rotations:
            return view
        image_rotations, shift_rotation = self.stage_rotations[block[0]]
        return replace(view, image_rotations=image_rotations, shift_rotation=shift_rotation)


def call_plan(patch_blocks: int, pixel_blocks: int, text_tokens: int, image_tokens: int) -> tuple:
    """(block key, image_start, tokens) per attention call: [text, image] per patch block, then the image
    alone per pixel block."""
    joint = tuple(((PATCH, i), text_tokens, text_tokens + image_tokens) for i in range(patch_blocks))
    return joint + tuple(((PIXEL, i), 0, image_tokens) for i in range(pixel_blocks))


FAMILY = PixelDiTFamily
