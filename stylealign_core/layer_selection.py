"""Which self-attention layers share attention with the reference.

A layer is named the way ComfyUI's UNet names it in transformer_options: (block kind, block id,
transformer index), e.g. ("output", 5, 0). The host glue lists the model's layers in execution order.
"""

from __future__ import annotations

from typing import Iterable

from .options import StyleAlignedOptions

LayerKey = tuple[str, int, int]


def evenly_spread(count: int, fraction: float) -> list[int]:
    """Indices of round(fraction * count) items spread evenly over range(count)."""
    chosen = round(max(0.0, min(1.0, fraction)) * count)
    if chosen <= 0:
        return []
    # Centre of each of `chosen` equal bins: spreads the picks over the whole network, ends included.
    return sorted({min(count - 1, int((i + 0.5) * count / chosen)) for i in range(chosen)})


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
