"""Anima (comfy/ldm/anima, ComfyUI 0.33+): Cosmos Predict2's DiT blocks, image-only self-attention then
cross-attention.

Anima is MiniTrainDIT (comfy/ldm/cosmos/predict2.py) plus an LLM adapter for its text features. Each DiT
block calls ComfyUI attention twice with transformer_options (so the override reaches both): the
self-attention over the image tokens alone, after QK RMSNorm and split-half RoPE (comfy_kitchen's
rms_rope_split_half: pair i = channels (i, i + D/2), rope.SPLIT_HALF), then the cross-attention to the
text; q/k/v reach the backend as (B, H, L, D) with skip_reshape=True. Blocks tag only block_index, the
same for both calls (and Anima pads its text to 512 tokens, which an image may match), so the calls are
planned in order (SelfThenCrossFamily): per block [self-attention (shared), cross-attention (never)];
the block index is read from the tag. The text adapter (LLMAdapter) calls F.scaled_dot_product_attention directly, outside the
model call at inference (the host runs it while preparing the conditioning): it is text-only and
untouched. The blocks' attn1 patch hook sees the hidden states before the q/k projections, not q/k, so
AdaIN happens in the override (RoPE undone and redone).
RoPE: the model's own pos_embedder (VideoRopePosition3DEmb: ids (t, row, col), NTK extrapolation and fps
modulation honoured) gives the table; positions are integer columns, and the shift by the image width
is read off the table (rope.column_extent_rotation).
Video (a latent of more than one frame) is refused: Anima is an image model and sharing across frames is
not what this family defines.
Defaults are ours (no paper for Anima; AlignedGen's principles carried over): every block's
self-attention, reference keys shifted by the image width, lambda = 1.1 (untested on real weights).
"""

from __future__ import annotations

import torch

from ...batch_layout import NODE_NAME
from ...errors import StyleAlignedError
from ..call_layout import CallLayout
from ..family import ALIGNEDGEN_KEY_SCALE, SelfThenCrossFamily
from ..rope import SPLIT_HALF, column_extent_rotation

BLOCKS = "blocks"


class AnimaFamily(SelfThenCrossFamily):
    name = "Anima"
    models = ("Anima",)
    host_modules = ("comfy.ldm.anima.model",)
    groups = (BLOCKS,)
    default_groups = (BLOCKS,)
    default_key_scale = ALIGNEDGEN_KEY_SCALE
    width_axis = 2  # ids (t, row, col)
    image_blocks = BLOCKS

    def block_counts(self, diffusion_model) -> dict[str, int]:
        return {BLOCKS: len(diffusion_model.blocks)}

    def call_layout(self, diffusion_model, batch, active, x, c_crossattn, transformer_options, kwargs) -> CallLayout:
        frames = -(-x.shape[2] // diffusion_model.patch_temporal) if x.dim() == 5 else 1
        if frames > 1:
            raise StyleAlignedError(
                f"{NODE_NAME}: Anima with a latent of {x.shape[2]} frames (video) is not supported: StyleAligned "
                f"shares one image's tokens per target. Use one-frame latents (images), or bypass the node for "
                f"this model."
            )
        patch = diffusion_model.patch_spatial
        rows, cols = -(-x.shape[-2] // patch), -(-x.shape[-1] // patch)
        fps = kwargs.get("fps")

        def make():
            with torch.no_grad():
                # The model's own table for a (1, T, H, W, C) embedded latent: (L, D/2, 2, 2).
                table = diffusion_model.pos_embedder.generate_embeddings(
                    torch.Size((1, frames, rows, cols, diffusion_model.model_channels)), fps=fps, device=x.device)
            table = table[None, None].float()
            return table, column_extent_rotation(table, cols)

        image_rotations, shift_rotation = self.cached((rows, cols, x.device, repr(fps)), make)
        return CallLayout(
            batch=batch, image_start=0, image_tokens=rows * cols, active=active,
            image_rotations=image_rotations, shift_rotation=shift_rotation, rope_scheme=SPLIT_HALF,
            call_plan=self.self_then_cross_plan(0, len(diffusion_model.blocks), rows * cols),
        )


FAMILY = AnimaFamily
