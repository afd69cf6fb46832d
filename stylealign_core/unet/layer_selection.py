"""Which UNet self-attention layers share attention with the reference.

A layer is named the way ComfyUI's UNet names it in transformer_options: (block kind, block id,
transformer index), e.g. ("output", 5, 0). The host glue lists the model's layers in execution order.
"""

from __future__ import annotations

from typing import Iterable

from ..layer_fraction import evenly_spread
from ..options import StyleAlignedOptions

LayerKey = tuple[str, int, int]


def block_kind_selected(kind: str, options: StyleAlignedOptions) -> bool:
    return {
        "input": options.share_input_blocks,
        "middle": options.share_middle_block,
        "output": options.share_output_blocks,
    }.get(kind, True)


def select_shared_layers(layers: Iterable[LayerKey], options: StyleAlignedOptions) -> frozenset[LayerKey]:
    """The layers (in execution order) that share, after the block filter and the layer fraction."""
    candidates = [layer for layer in layers if block_kind_selected(layer[0], options)]
    return frozenset(candidates[i] for i in evenly_spread(len(candidates), options.shared_layer_fraction))
