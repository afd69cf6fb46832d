"""Reference strength: an additive shift on the attention logits of the appended reference tokens.

An attn1 patch can only change the inputs of the q/k/v projections, not the logits, so the shift is
applied by an attention override (ComfyUI's `optimized_attention_override` transformer option): the
patch leaves a PendingLogitShift, and the next attention call, which is that layer's self-attention,
receives it as an additive mask. Adding log(s) to a key's logits multiplies its softmax weight by s
before renormalisation. The reference row sees the same tokens twice, so a shift on the second copy
does not change its output.
"""

from __future__ import annotations

import logging
from typing import Callable, Optional

import torch

from ..runtime import PatchRuntime, PendingLogitShift

log = logging.getLogger(__name__)


class ReferenceLogitShift:
    def __init__(self, runtime: PatchRuntime, previous_override: Optional[Callable] = None) -> None:
        self.runtime = runtime
        self.previous_override = previous_override
        self._mask_cache: dict[tuple, torch.Tensor] = {}
        self._warned = False

    def mask_for(self, pending: PendingLogitShift, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """(1, total_tokens) additive mask: 0 on the layer's own tokens, the shift on the reference's."""
        key = (pending.own_tokens, pending.total_tokens, pending.shift, dtype, device)
        mask = self._mask_cache.get(key)
        if mask is None:
            mask = torch.zeros((1, pending.total_tokens), dtype=dtype, device=device)
            mask[:, pending.own_tokens :] = pending.shift
            self._mask_cache[key] = mask
        return mask

    def __deepcopy__(self, memo):
        # ModelPatcher.clone deep-copies model_options; keep sharing the runtime with the other pieces.
        return self

    def __call__(self, attention_fn, *args, **kwargs):
        pending = self.runtime.take_pending_shift()
        if pending is not None:
            self._add_mask(pending, args, kwargs)
        if self.previous_override is not None:
            return self.previous_override(attention_fn, *args, **kwargs)
        return attention_fn(*args, **kwargs)

    def _add_mask(self, pending: PendingLogitShift, args: tuple, kwargs: dict) -> None:
        q, k = args[0], args[1]
        token_axis = -2 if kwargs.get("skip_reshape", False) else 1
        existing = kwargs.get("mask")
        # A mask passed positionally, a boolean mask, or keys/queries another patch resized or tiled (e.g.
        # HyperTile): leave this call alone.
        if len(args) > 4 or k.shape[token_axis] != pending.total_tokens or q.shape[0] != k.shape[0] or (
            existing is not None and existing.dtype == torch.bool
        ):
            if not self._warned:
                log.warning(
                    "StyleAlignedPatch: another patch changed the self-attention inputs; "
                    "reference_strength is not applied in those layers."
                )
                self._warned = True
            return
        mask = self.mask_for(pending, q.dtype, q.device)
        kwargs["mask"] = mask if existing is None else existing + mask
