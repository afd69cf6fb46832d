"""HiDream-O1 (comfy/ldm/hidream_o1, ComfyUI 0.33+): a Qwen3-VL decoder over [text, image, edit patches].

How the host calls attention: every decoder layer (the host's Llama attention, grouped-query: fewer K/V
heads than Q heads) projects q/k/v, applies QK-norm and split-half RoPE (Qwen3-VL interleaved MRoPE, pair i
= channels (i, i + D/2), rope.py SPLIT_HALF), then calls the model's two-pass attention
(hidream_o1/attention.py) with q (B, Hq, L, D), k/v (B, Hkv, L, D) and enable_gqa=True:
- the autoregressive prefix, tokens [0, ar_len) (the prompt up to the timestep token), attends causally
  through torch's SDPA directly: it never reaches the attention override and holds no image token;
- the generation part, queries [ar_len, L) (timestep token, image, edit-image patches), attends to all L
  keys through `optimized_attention(..., skip_reshape=True, skip_output_reshape=True, enable_gqa=True,
  transformer_options=...)`: the call the pack shares. Its queries are a suffix of its keys
  (CallLayout.query_start = ar_len); on later steps the model caches the prefix's K/V and the call looks the
  same (fresh queries [ar_len, L), keys [0, L)).
Blocks: the model tags every layer block_type "double", block_index i; they are all one stream over one
sequence, so the pack calls them "single". Token order [text (input_ids), image, edit patches]: the image
starts at input_ids' length (the ViT tokens of edit images are spliced into the text) and has
(H/32)(W/32) tokens (pixel space, 32x32 patches). Positions: the conditioning's position_ids (3, L), the
model's own; rotations from its language model's compute_freqs_cis. Width axis: id axis 2.
Defaults are ours (no paper for HiDream-O1; AlignedGen's principles carried over): every layer, image
tokens only (the text and the edit patches are neither normalised nor shared), AdaIN before RoPE, the
reference's keys shifted by the image width, lambda = 1.1 (untested on real weights).
"""

from __future__ import annotations

from typing import Optional

import torch

from ...batch_layout import NODE_NAME
from ...errors import StyleAlignedError
from ..call_layout import CallLayout
from ..family import ALIGNEDGEN_KEY_SCALE, BlockKey, TransformerFamily
from ..rope import SPLIT_HALF, image_and_shift_rotations

SINGLE = "single"
HOST_MODULE = "comfy.ldm.hidream_o1.model"
HOST_BLOCK_TYPE = "double"  # what the host writes in transformer_options for every decoder layer


class HiDreamO1Family(TransformerFamily):
    name = "HiDream-O1"
    models = ("HiDream-O1",)
    host_modules = (HOST_MODULE,)
    defaults_from = ""
    groups = (SINGLE,)
    default_groups = (SINGLE,)
    default_key_scale = ALIGNEDGEN_KEY_SCALE
    width_axis = 2
    uses_pre_rope_hook = False

    def block_key(self, transformer_options: dict, call_index: int) -> Optional[BlockKey]:
        if transformer_options.get("block_type") != HOST_BLOCK_TYPE or "block_index" not in transformer_options:
            return None
        return (SINGLE, int(transformer_options["block_index"]))

    def block_counts(self, diffusion_model) -> dict[str, int]:
        return {SINGLE: len(diffusion_model.language_model.layers)}

    def call_layout(self, diffusion_model, batch, active: bool, x, c_crossattn, transformer_options, kwargs) -> CallLayout:
        input_ids, position_ids, ar_len = (kwargs.get(name) for name in ("input_ids", "position_ids", "ar_len"))
        if input_ids is None or position_ids is None or ar_len is None:
            raise StyleAlignedError(
                f"{NODE_NAME}: the HiDream-O1 model was called without its prompt's token ids and positions "
                f"(input_ids, position_ids, ar_len in the conditioning); encode the prompt with HiDream-O1's own text "
                f"encoder (CLIPTextEncode on its CLIP, or StyleAlignedPromptBatch)."
            )
        patch = diffusion_model.patch_size
        image_start = int(input_ids.shape[1])
        image_tokens = (x.shape[-2] // patch) * (x.shape[-1] // patch)
        positions = position_ids[0][:, image_start:image_start + image_tokens]  # (3, N): the model's own ids
        key = (image_start, image_tokens, tuple(positions[:, 0].tolist()), tuple(positions[:, -1].tolist()), x.device)
        image_rotations, shift_rotation = self.cached(
            key, lambda: _model_rotations(diffusion_model, positions, self.width_axis, x.device))
        return CallLayout(
            batch=batch, image_start=image_start, image_tokens=image_tokens, query_start=int(ar_len), active=active,
            image_rotations=image_rotations, shift_rotation=shift_rotation, rope_scheme=SPLIT_HALF,
        )


def _model_rotations(dm, positions: torch.Tensor, width_axis: int, device):
    """(image rotations (1, 1, N, D/2, 2, 2), shift rotation (1, 1, 1, D/2, 2, 2)) from the model's own
    frequencies (language_model.compute_freqs_cis: cos over D, sin and -sin over D/2 per token)."""
    head_dim = dm.text_config.head_dim

    def table(ids: torch.Tensor) -> torch.Tensor:  # ids (1, L, 3)
        ids = ids[0].transpose(0, 1)  # (3, L), as the model reads its position_ids
        cos, sin, negative_sin = dm.language_model.compute_freqs_cis(ids.to(device), device)
        tokens, half = ids.shape[-1], head_dim // 2
        cos = cos.reshape(-1, tokens, head_dim)[0]
        sin, negative_sin = (t.reshape(-1, tokens, half)[0] for t in (sin, negative_sin))
        # Pair i = (x_i, x_{i+D/2}): [[cos, -sin], [sin, cos]] as the model's apply_rope applies it.
        matrix = torch.stack((cos[:, :half], negative_sin, sin, cos[:, half:]), dim=-1)
        return matrix.reshape(1, 1, tokens, half, 2, 2).float()

    return image_and_shift_rotations(table, positions.transpose(0, 1).unsqueeze(0).float(), width_axis, device)


FAMILY = HiDreamO1Family
