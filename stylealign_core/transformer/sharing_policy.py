"""What the transformer route shares for one family, read off the patch's options: the blocks, the share
flags, lambda ("auto": the family's default) and the logit shift. The node's inputs reach the attention
override only through here."""

from __future__ import annotations

from ..options import StyleAlignedOptions
from ..share_flags import share_flags
from .attention_override import TransformerSharing
from .block_selection import select_shared_blocks
from .family import TransformerFamily


def transformer_sharing(options: StyleAlignedOptions, family: TransformerFamily, block_counts: dict[str, int]) -> TransformerSharing:
    """block_counts: the model's blocks per group (read off the host model by the family's host side)."""
    return TransformerSharing(
        shared_blocks=select_shared_blocks(family, block_counts, options.transformer_blocks, options.shared_layer_fraction),
        flags=share_flags(options),
        key_scale=options.key_scale(family.default_key_scale),
        position_shift=options.shift_reference_positions,
        logit_shift=options.attention_logit_shift,
    )
