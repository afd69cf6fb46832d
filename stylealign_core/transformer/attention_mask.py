"""Attention masks in the transformer route: read the host's mask, extend it over the appended keys.

A mask describes which of a call's own keys each query may see (a text encoder's padding on 0.33, the
attention_mask conditioning). The backends read it as the host's attention_pytorch does: a 2-D mask is
(queries, keys), a 3-D one (rows, queries, keys) with one head axis added, a 4-D one (rows, heads, queries,
keys); a size-1 axis broadcasts. The appended reference image keys are never masked: each target's mask
keeps covering its own keys and grows by zeros (boolean: True) over the appended ones, plus the logit
shift of reference_strength when there is one. The reference's own call keeps its own mask unchanged.
"""

from __future__ import annotations

import math
from typing import Optional

import torch


def as_key_mask(mask: torch.Tensor, rows: int, heads: int, queries: int, keys: int) -> Optional[torch.Tensor]:
    """The mask as (rows or 1, heads or 1, queries or 1, keys), or None when it does not fit this call (a
    mask for another batch split or token count): such a call cannot be shared."""
    if not torch.is_tensor(mask) or mask.dim() not in (2, 3, 4):
        return None
    if mask.dim() == 2:
        mask = mask.unsqueeze(0)
    if mask.dim() == 3:
        mask = mask.unsqueeze(1)
    batch, mask_heads, mask_queries, mask_keys = mask.shape
    if batch not in (1, rows) or mask_heads not in (1, heads) or mask_queries not in (1, queries) or mask_keys != keys:
        return None
    return mask


def rows_of(mask: Optional[torch.Tensor], rows: torch.Tensor) -> Optional[torch.Tensor]:
    """The mask of the given batch rows (a mask broadcast over rows is shared by all)."""
    if mask is None or mask.shape[0] == 1:
        return mask
    return mask.index_select(0, rows)


def extended_over_appended(mask: Optional[torch.Tensor], own_keys: int, appended: int, logit_shift, dtype, device):
    """The target call's mask: its own keys' mask, then the appended reference keys unmasked (or shifted by
    logit_shift). None when there is no mask and no shift. logit_shift: one float for every appended key,
    or one per reference (several references: appended = n equal blocks, block i shifted by logit_shift[i]);
    the appended part is then an additive bias another additive mask can be added to."""
    shifts = (logit_shift,) if isinstance(logit_shift, (int, float)) else tuple(logit_shift)
    no_shift = all(shift == 0.0 for shift in shifts)
    if mask is None and no_shift:
        return None
    if mask is None:
        mask = torch.zeros((1, 1, 1, own_keys), dtype=dtype, device=device)
    if mask.dtype == torch.bool:
        if no_shift:
            return torch.cat([mask, mask.new_ones(mask.shape[:-1] + (appended,))], dim=-1)
        # A shift needs an additive mask: masked keys get the dtype's lowest value.
        mask = torch.zeros(mask.shape, dtype=dtype, device=device).masked_fill(~mask, torch.finfo(dtype).min)
    extension = reference_key_bias(shifts, appended, mask.dtype, mask.device).expand(mask.shape[:-1] + (appended,))
    return torch.cat([mask, extension], dim=-1)


def reference_key_bias(shifts, appended: int, dtype, device) -> torch.Tensor:
    """(appended,) additive logits of the appended reference keys: len(shifts) equal blocks, block i at
    shifts[i] (-inf as the dtype's lowest value)."""
    per_reference = appended // len(shifts)
    lowest = torch.finfo(dtype).min
    return torch.cat([
        torch.full((per_reference,), shift if math.isfinite(shift) else lowest, dtype=dtype, device=device)
        for shift in shifts
    ])
