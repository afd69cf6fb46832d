"""JoyImage (comfy/ldm/joyimage, ComfyUI 0.33+): dual-stream blocks on [image, edit references, text].

Each block (JoyImageTransformerBlock) projects image and text streams apart, applies QK RMSNorm and RoPE to
the image stream only (comfy_kitchen's fused rms_rope, interleaved channel pairs (2i, 2i + 1), the
model's own (cos, -sin; sin, cos) matrices) and calls attention once on [target image, edit reference
latents, text], flattened to (B, L, H*D) with heads= as a keyword. Blocks are tagged in
transformer_options: block_type "double", block_index. RoPE ids (t, row, col) from 0 on the target's
patch grid; edit reference latents (JoyImage-Edit) continue along t, and stay outside the shared range
(never normalised, never appended). Text tokens carry no RoPE. A latent of several frames is read as one
image of frames x rows x cols tokens (JoyImage is an image model; its RoPE numbers the frames).
The host has no pre-RoPE hook in these blocks: the override undoes the rotation, AdaINs and redoes it.
Defaults are ours (no paper for JoyImage; AlignedGen's principles carried over): every block (all are
joint), reference keys shifted by the image width along the width axis, lambda = 1.1 (untested on real
weights).
"""

from __future__ import annotations

import torch

from ..call_layout import CallLayout
from ..family import ALIGNEDGEN_KEY_SCALE, TaggedBlocksFamily
from ..rope import column_extent_rotation, heads_axis_first

DOUBLE = "double"


class JoyImageFamily(TaggedBlocksFamily):
    name = "JoyImage"
    models = ("JoyImage",)
    host_modules = ("comfy.ldm.joyimage.model",)
    groups = (DOUBLE,)
    default_groups = (DOUBLE,)
    default_key_scale = ALIGNEDGEN_KEY_SCALE
    width_axis = 2  # ids (t, row, col)
    uses_pre_rope_hook = False  # the blocks call no attn1 patch

    def block_counts(self, diffusion_model) -> dict[str, int]:
        return {DOUBLE: len(diffusion_model.double_blocks)}

    def call_layout(self, diffusion_model, batch, active, x, c_crossattn, transformer_options, kwargs) -> CallLayout:
        frames, rows, cols = patch_grid(x, diffusion_model.patch_size)

        def make():
            # The model's own table (get_rotary_pos_embed_for_components: its theta and axes) for the target
            # alone, (1, N, 1, D/2, 2, 2); the shift by the image width read off it.
            with torch.no_grad():
                table = diffusion_model.get_rotary_pos_embed_for_components([(frames, rows, cols)], device=x.device)
            table = heads_axis_first(table).float()
            return table, column_extent_rotation(table, cols)

        image_rotations, shift_rotation = self.cached((frames, rows, cols, x.device), make)
        return CallLayout(
            batch=batch, image_start=0, image_tokens=frames * rows * cols, active=active,
            image_rotations=image_rotations, shift_rotation=shift_rotation,
        )


def patch_grid(x: torch.Tensor, patch_size) -> tuple[int, int, int]:
    """(frames, rows, cols) of patch tokens of a (B, C, T, H, W) latent after the model pads it to its patch."""
    pt, ph, pw = patch_size
    return -(-x.shape[-3] // pt), -(-x.shape[-2] // ph), -(-x.shape[-1] // pw)


FAMILY = JoyImageFamily
