"""The interface a transformer family implements (one small module per family under families/)."""

from __future__ import annotations

from typing import Optional

import logging

import torch

from .call_layout import CALL_LAYOUT_KEY

log = logging.getLogger(__name__)

BlockKey = tuple[str, int]  # (block group, index within the group), e.g. ("single", 12)


class TransformerFamily:
    """A family's token bookkeeping inside attention. Subclass it in families/<name>.py.

    Class attributes: name (for messages); models, the model names users know the family by (the node's
    description, tooltips, errors and pyproject's description list them; tests check that they do);
    defaults_from, the paper the defaults come from ("" = ours, no paper); groups, the block groups in execution order (the node's
    transformer_blocks choice "double"/"single"/"all" and "auto" -> default_groups select among them);
    default_key_scale (lambda on the appended reference keys), used when the node says "auto". The
    position shift is the node's switch; a family without RoPE gives no shift rotation in its CallLayout.
    """

    name = "transformer"
    models: tuple[str, ...] = ()
    defaults_from = ""
    groups: tuple[str, ...] = ("all",)
    default_groups: tuple[str, ...] = ("all",)
    default_key_scale = 1.0

    def block_key(self, transformer_options: dict, call_index: int) -> Optional[BlockKey]:
        """Which block this attention call belongs to; None: a call the family does not share (it passes
        through unchanged). call_index counts the attention calls of this model call (0-based), for
        families that tag nothing in transformer_options."""
        raise NotImplementedError

    def heads_first(self, args: tuple, kwargs: dict) -> Optional[tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]]:
        """(q, k, v, heads) with q/k/v as (B, H, L, D) from a backend call, or None to pass it through.

        Default: the host's two standard formats, (B, H, L, D) with skip_reshape=True or (B, L, H*D).
        A family whose tensors arrive otherwise (e.g. SD3's v as (B, L, H, D)) overrides this.
        """
        if len(args) == 5 and args[4] is None:  # an empty mask passed by position (Qwen-Image, Lumina)
            args = args[:4]
        if len(args) < 3 or len(args) > 4:  # more positionals (a mask passed by position): leave it alone
            return None
        q, k, v = args[:3]
        heads = args[3] if len(args) > 3 else kwargs.get("heads")
        if heads is None or not all(torch.is_tensor(t) for t in (q, k, v)):
            return None
        if kwargs.get("skip_reshape", False):
            return (q, k, v, heads) if q.dim() == 4 and k.dim() == 4 and v.dim() == 4 else None
        if q.dim() != 3 or k.dim() != 3 or v.dim() != 3:
            return None
        return tuple(_split_heads(t, heads) for t in (q, k, v)) + (heads,)


class PlannedBlocksFamily(TransformerFamily):
    """A family whose blocks tag nothing in transformer_options: the host glue lists the model call's
    attention calls in order (CallLayout.call_plan) and the block is read from there by call_index."""

    _warned_extra_calls = False

    def block_key(self, transformer_options: dict, call_index: int) -> Optional[BlockKey]:
        layout = transformer_options.get(CALL_LAYOUT_KEY)
        if layout is None:
            return None
        if layout.call_plan is not None and call_index == len(layout.call_plan) and not self._warned_extra_calls:
            log.warning("StyleAlignedPatch: the %s model made more attention calls than its blocks explain (another "
                        "node adds attention?); the extra calls are left unchanged.", self.name)
            self._warned_extra_calls = True
        return layout.planned_block(call_index)


def _split_heads(t: torch.Tensor, heads: int) -> torch.Tensor:
    batch, tokens, width = t.shape
    return t.view(batch, tokens, heads, width // heads).transpose(1, 2)
