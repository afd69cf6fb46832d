"""Ideogram 4 (comfy/ldm/ideogram4, ComfyUI 0.33+): one single-stream layer stack over [text, image].

How the host calls attention: every layer (Ideogram4Attention) projects q/k/v (B, L, H, D), applies QK
RMSNorm and RoPE fused (`ck.rms_rope_split_half`), transposes to (B, H, L, D) and calls
`optimized_attention_masked(q, k, v, heads, mask, skip_reshape=True, transformer_options=...)`, the mask the
5th positional argument: None, or with a padded prompt (the conditioning's attention_mask) an additive
(B, 1, L, L) block-diagonal mask that keeps padding tokens among themselves. The layers tag nothing in
transformer_options: the attention calls are counted (CallLayout.call_plan), one per layer.
Token order: [text, image] when the call has text context; the image alone when it has none (the model's
image-only path). Image tokens: one per latent cell (the 128-channel latent is already 2x2-patchified).
RoPE: Qwen3-VL interleaved MRoPE over ids (t, row, col) + 65536 for image tokens (text i: (i, i, i)), with
SPLIT-HALF pairs (channel i with i + D/2, rope.py SPLIT_HALF), not the interleaved (2i, 2i+1). The rotations are the
model's own: its module's `precompute_freqs_cis` and `_split_half_rope_matrix` on its `_image_position_ids`.
The width axis is id axis 2 (col); the shift moves the reference's keys by the image width in tokens.
There is no pre-RoPE attn1 hook in these layers: the override undoes RoPE for AdaIN and redoes it.
Defaults are ours (no paper for Ideogram 4; AlignedGen's principles carried over): every layer (all are
single-stream), image tokens only, AdaIN before RoPE, reference keys shifted by the image width,
lambda = 1.1 (untested on real weights).
"""

from __future__ import annotations

import sys

import torch

from ...batch_layout import NODE_NAME
from ...errors import StyleAlignedError
from ..call_layout import CallLayout
from ..family import ALIGNEDGEN_KEY_SCALE, PlannedBlocksFamily
from ..rope import SPLIT_HALF, image_and_shift_rotations

SINGLE = "single"
HOST_MODULE = "comfy.ldm.ideogram4.model"


class Ideogram4Family(PlannedBlocksFamily):
    name = "Ideogram 4"
    models = ("Ideogram 4",)
    host_modules = (HOST_MODULE,)
    defaults_from = ""
    groups = (SINGLE,)
    default_groups = (SINGLE,)
    default_key_scale = ALIGNEDGEN_KEY_SCALE
    width_axis = 2
    uses_pre_rope_hook = False

    def block_counts(self, diffusion_model) -> dict[str, int]:
        return {SINGLE: len(diffusion_model.layers)}

    def call_layout(self, diffusion_model, batch, active: bool, x, c_crossattn, transformer_options, kwargs) -> CallLayout:
        text_tokens = 0 if c_crossattn is None else int(c_crossattn.shape[1])  # no context: the image-only path
        h_len, w_len = int(x.shape[-2]), int(x.shape[-1])
        image_tokens = h_len * w_len
        image_rotations, shift_rotation = self.cached(
            (h_len, w_len, x.device), lambda: _model_rotations(diffusion_model, h_len, w_len, x.device, self.width_axis))
        return CallLayout(
            batch=batch, image_start=text_tokens, image_tokens=image_tokens, active=active,
            image_rotations=image_rotations, shift_rotation=shift_rotation, rope_scheme=SPLIT_HALF,
            call_plan=call_plan(len(diffusion_model.layers), text_tokens, image_tokens),
        )


def call_plan(layers: int, text_tokens: int, image_tokens: int) -> tuple:
    """(block key, image_start, tokens) per attention call: one call per layer on [text, image]."""
    return tuple(((SINGLE, i), text_tokens, text_tokens + image_tokens) for i in range(layers))


def _model_rotations(dm, h_len: int, w_len: int, device, width_axis: int):
    """(image rotations (1, 1, N, D/2, 2, 2), shift rotation (1, 1, 1, D/2, 2, 2)) with the model's own
    MRoPE helpers: its image ids, and its module's frequency and split-half matrix functions."""
    module = sys.modules.get(type(dm).__module__)
    frequencies = getattr(module, "precompute_freqs_cis", None)
    as_matrix = getattr(module, "_split_half_rope_matrix", None)
    if frequencies is None or as_matrix is None or not hasattr(dm, "_image_position_ids"):
        raise StyleAlignedError(
            f"{NODE_NAME}: this ComfyUI's Ideogram 4 model builds its RoPE positions differently from the one "
            f"StyleAligned knows (ComfyUI 0.33), so the reference's positions cannot be shifted correctly. Update "
            f"the pack or bypass StyleAlignedPatch for this model."
        )

    def table(ids: torch.Tensor) -> torch.Tensor:  # ids (1, L, 3) -> (1, L, 1, D/2, 2, 2), the heads axis at 2
        freqs = frequencies(dm.head_dim, ids[0].transpose(0, 1), dm.rope_theta, rope_dims=dm.mrope_section,
                            interleaved_mrope=True, device=device)
        return as_matrix(freqs)

    ids = dm._image_position_ids(h_len, w_len, device).unsqueeze(0).float()  # (0, row, col) + 65536
    return image_and_shift_rotations(table, ids, width_axis, device)


FAMILY = Ideogram4Family
