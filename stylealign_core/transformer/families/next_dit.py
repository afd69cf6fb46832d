"""Lumina 2 and Z-Image (comfy/ldm/lumina NextDiT): three stages per forward, blocks counted.

Per forward: the text-only context refiner (never shared), the image-only noise refiner ([image, image
padding]), then the main layers on [caption, caption padding, image, image padding]. Z-Image pads caption
and image tokens to multiples of 32 (pad tokens are neither normalised nor shared); Lumina 2 pads nothing.
q/k/v reach the backend as (B, H, L, D) after QK-norm and RoPE, grouped K/V heads already repeated to the
query heads. Nothing is tagged in transformer_options: the host glue lists the calls (CallLayout.call_plan).
RoPE ids: caption (i + 1, 0, 0), image (caption length + 1, row, col).
Defaults are ours (no paper): the main layers only, reference keys shifted by the image width,
lambda = 1.1 (AlignedGen's Flux values carried over; untested on real weights).
"""

from __future__ import annotations

from ..family import PlannedBlocksFamily
from .flux import ALIGNEDGEN_KEY_SCALE

NOISE_REFINER = "noise_refiner"
MAIN = "main"


class NextDiTFamily(PlannedBlocksFamily):
    name = "Lumina 2 / Z-Image"
    models = ("Lumina 2", "Z-Image")
    groups = (NOISE_REFINER, MAIN)
    default_groups = (MAIN,)
    default_key_scale = ALIGNEDGEN_KEY_SCALE
    width_axis = 2


def padded(tokens: int, multiple) -> int:
    """Token count after the model pads to a multiple (None: no padding)."""
    return tokens if not multiple else tokens + (-tokens) % multiple


def call_plan(context_refiners: int, noise_refiners: int, main_layers: int, caption_tokens: int, image_tokens: int, multiple) -> tuple:
    """The attention calls of one forward in order: (block key or None, image_start, tokens)."""
    caption, image = padded(caption_tokens, multiple), padded(image_tokens, multiple)
    return (
        tuple((None, 0, caption) for _ in range(context_refiners))
        + tuple(((NOISE_REFINER, i), 0, image) for i in range(noise_refiners))
        + tuple(((MAIN, i), caption, caption + image) for i in range(main_layers))
    )
