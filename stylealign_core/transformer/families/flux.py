"""Flux.1 (dev/schnell, Kontext), Flux.2 and Chroma: comfy/ldm/flux and comfy/ldm/chroma.

Joint sequence [text, image, extra] where extra holds Kontext/edit reference latents. q/k/v reach the
backend as (B, H, L, D) after QK-norm and RoPE (flux/math.py attention, skip_reshape=True). Blocks are
tagged in transformer_options: block_type "double"/"single", block_index.
Defaults are AlignedGen's (Zhang et al., NeurIPS 2025): single-stream blocks only, reference keys at
positions shifted by the image width, lambda = 1.1.
"""

from __future__ import annotations

from typing import Optional

from ..family import BlockKey, TransformerFamily

ALIGNEDGEN_KEY_SCALE = 1.1


class FluxFamily(TransformerFamily):
    name = "Flux"
    models = ("Flux.1", "Flux.2", "Chroma")
    defaults_from = "AlignedGen"
    groups = ("double", "single")
    default_groups = ("single",)
    default_key_scale = ALIGNEDGEN_KEY_SCALE
    # The image-id axis that runs along the image width (ids are (index, row, col[, text position])).
    width_axis = 2

    def block_key(self, transformer_options: dict, call_index: int) -> Optional[BlockKey]:
        block_type = transformer_options.get("block_type")
        if block_type not in self.groups:
            return None
        return (block_type, int(transformer_options.get("block_index", 0)))


def image_range(text_tokens: int, image_tokens: int) -> tuple[int, int]:
    """(start, count) of the generated image's tokens: right after the text."""
    return text_tokens, image_tokens
