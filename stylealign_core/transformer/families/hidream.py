"""HiDream-I1 (comfy/ldm/hidream): image tokens FIRST, double then single blocks, partial RoPE, counted.

Double blocks call attention on [image, text], single blocks on [image, text, llama text]; q/k/v reach the
backend flattened, (B, L, H*D) with heads as the fourth argument, after RoPE on the first rope-dims
channels of each head (HiDream rotates only the first half when its rope axes cover half the head dim).
Nothing is tagged in transformer_options: the host glue lists the calls (CallLayout.call_plan).
Image ids (0, row, col), text ids 0.
Defaults are ours (no paper; AlignedGen's choice for Flux carried over): the single-stream blocks,
reference keys shifted by the image width, lambda = 1.1 (untested on real weights).
"""

from __future__ import annotations

from ..family import PlannedBlocksFamily
from .flux import ALIGNEDGEN_KEY_SCALE

DOUBLE = "double"
SINGLE = "single"


class HiDreamFamily(PlannedBlocksFamily):
    name = "HiDream"
    models = ("HiDream",)
    groups = (DOUBLE, SINGLE)
    default_groups = (SINGLE,)
    default_key_scale = ALIGNEDGEN_KEY_SCALE
    width_axis = 2


def call_plan(double_blocks: int, single_blocks: int, tokens: int) -> tuple:
    """(block key, image_start, tokens) per attention call: image first in every block, the same length
    everywhere ([image, T5, last Llama layer, this block's Llama layer])."""
    return tuple(((DOUBLE, i), 0, tokens) for i in range(double_blocks)) + tuple(((SINGLE, i), 0, tokens) for i in range(single_blocks))
