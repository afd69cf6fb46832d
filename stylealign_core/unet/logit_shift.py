"""Reference strength: an additive shift on the attention logits of the appended reference tokens.

An attn1 patch can only change the inputs of the q/k/v projections, not the logits, so the shift is
applied by an attention override (ComfyUI's `optimized_attention_override` transformer option): the
patch leaves a PendingLogitShift, and the next attention call, which is that layer's self-attention,
receives it as an additive mask. Adding log(s) to a key's logits multiplies its softmax weight by s
before renormalisation. The reference row sees the same tokens twice, so a shift on the second copy
does not change its output.

With AdaIN on the projections (adain_on "projections (paper)") the same call also normalises the
projected q/k/v the attn1 patch left a note for (projected_adain.py), before any re-tiling.

Tiled queries (HyperTile splits each image's queries into T tiles and lets attention split the keys by
count, row-major, into T chunks): keys [own ; reference] are re-laid out per tile as
[own chunk t ; reference chunk t], so tile t of every image sees its own chunk as without the pack plus
the reference's same chunk, and the reference row sees its chunk twice (unchanged output).
Several references (references.py): keys [own ; reference 1 ; ... ; reference n], block i's logits shifted
by log(strength * w_i), tiles laid out as [own chunk t ; reference 1 chunk t ; ... ] alike.
"""

from __future__ import annotations

import logging
from typing import Callable, Optional

import torch

from .patch_runtime import PatchRuntime, PendingLogitShift
from .full_sharing import can_share_fully, fully_shared_attention
from .projected_adain import adain_own_tokens

log = logging.getLogger(__name__)


class ReferenceLogitShift:
    def __init__(self, runtime: PatchRuntime, previous_override: Optional[Callable] = None) -> None:
        self.runtime = runtime
        self.previous_override = previous_override
        self._mask_cache: dict[tuple, torch.Tensor] = {}
        self._warned = False

    def mask_for(self, pending: PendingLogitShift, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """(1, total_tokens) additive mask: 0 on the layer's own tokens, the shift on the reference's (with
        several references, block i of own_tokens keys after the own ones gets block_shifts[i])."""
        key = (pending.own_tokens, pending.total_tokens, pending.shift, pending.block_shifts, dtype, device)
        mask = self._mask_cache.get(key)
        if mask is None:
            mask = torch.zeros((1, pending.total_tokens), dtype=dtype, device=device)
            own = pending.own_tokens
            if pending.block_shifts:
                for block, shift in enumerate(pending.block_shifts, start=1):
                    mask[:, block * own : (block + 1) * own] = shift
            else:
                mask[:, own:] = pending.shift
            self._mask_cache[key] = mask
        return mask

    def __deepcopy__(self, memo):
        # ModelPatcher.clone deep-copies model_options; keep sharing the runtime with the other pieces.
        return self

    def __call__(self, attention_fn, *args, **kwargs):
        pending = self.runtime.take_pending_shift()
        if pending is not None and pending.full_share is not None:
            return self._fully_shared(pending, attention_fn, args, kwargs)
        if pending is not None:
            args = self._prepare(pending, args, kwargs)
        return self._attend(attention_fn, args, kwargs)

    def _attend(self, attention_fn, args, kwargs):
        if self.previous_override is not None:
            return self.previous_override(attention_fn, *args, **kwargs)
        return attention_fn(*args, **kwargs)

    def _fully_shared(self, pending: PendingLogitShift, attention_fn, args: tuple, kwargs: dict):
        if len(args) < 4 or not can_share_fully(args[0], args[1], args[2], pending.full_share, kwargs):
            if not self._warned:
                log.warning("StyleAlignedPatch: another patch changed the self-attention inputs (tiles, a mask); "
                            "full_attention_sharing is not applied in those layers.")
                self._warned = True
            return self._attend(attention_fn, args, kwargs)

        def attend(q, k, v, heads, **call_kwargs):
            return self._attend(attention_fn, (q, k, v, heads, *args[4:]), call_kwargs)

        return fully_shared_attention(attend, args[0], args[1], args[2], args[3], pending.full_share, **kwargs)

    def _prepare(self, pending: PendingLogitShift, args: tuple, kwargs: dict) -> tuple:
        q, k = args[0], args[1]
        token_axis = -2 if kwargs.get("skip_reshape", False) else 1
        existing = kwargs.get("mask")
        tiles = q.shape[0] // k.shape[0] if k.shape[0] and q.shape[0] % k.shape[0] == 0 else 0
        own = pending.own_tokens
        shared = pending.total_tokens != own
        blocks = 1 + (len(pending.block_shifts) or 1)  # [own ; reference 1 ; ... ; reference n]
        # A mask passed positionally, a boolean mask, or keys another patch resized: leave this call alone.
        if (
            len(args) > 4 or k.shape[token_axis] != pending.total_tokens or tiles == 0
            or (shared and pending.total_tokens != blocks * own) or own % tiles != 0
            or (existing is not None and existing.dtype == torch.bool)
            or (pending.projected is not None and token_axis != 1)
        ):
            if not self._warned:
                log.warning(
                    "StyleAlignedPatch: another patch changed the self-attention inputs; "
                    "reference_strength and AdaIN on the projections are not applied in those layers."
                )
                self._warned = True
            return args
        if pending.projected is not None:
            args = self._adain_projections(pending, args)
        if not shared:
            return args
        q, k = args[0], args[1]
        if tiles > 1:
            args = (q, _per_tile(k, tiles, token_axis, blocks), _per_tile(args[2], tiles, token_axis, blocks), *args[3:])
            pending = PendingLogitShift(own // tiles, pending.total_tokens // tiles, pending.shift, block_shifts=pending.block_shifts)
        if pending.shift != 0.0 or any(shift != 0.0 for shift in pending.block_shifts):
            mask = self.mask_for(pending, q.dtype, q.device)
            kwargs["mask"] = mask if existing is None else existing + mask
        return args

    @staticmethod
    def _adain_projections(pending: PendingLogitShift, args: tuple) -> tuple:
        """q, k, v (rows, tokens, channels) with the targets' own tokens AdaIN-normalised to the reference's.
        Queries cover only own tokens (possibly in tiles); keys and values may carry the appended ones."""
        projected = pending.projected
        q, k, v = args[0], args[1], args[2]
        if projected.queries:
            q = adain_own_tokens(q, q.shape[1], projected.layout)
        if projected.keys:
            k = adain_own_tokens(k, pending.own_tokens, projected.layout)
        if projected.values:
            v = adain_own_tokens(v, pending.own_tokens, projected.layout)
        return (q, k, v, *args[3:])


def _per_tile(tokens: torch.Tensor, tiles: int, token_axis: int, blocks: int = 2) -> torch.Tensor:
    """[own ; reference] along the token axis -> [own chunk 0 ; reference chunk 0 ; own chunk 1 ; ...]
    (several references: `blocks` = 1 + n blocks, each cut into the same tiles)."""
    moved = tokens.movedim(token_axis, 1)
    rows, count, *rest = moved.shape
    per_tile = moved.reshape(rows, blocks, tiles, count // (blocks * tiles), *rest).transpose(1, 2).reshape(rows, count, *rest)
    return per_tile.movedim(1, token_axis)
