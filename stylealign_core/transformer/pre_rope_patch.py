"""AdaIN at the host's own pre-RoPE hook, where the host has one (ComfyUI 0.33, in the blocks of the
families that declare uses_pre_rope_hook).

Those hosts call attn1 patches inside the block as p(q, k, v, pe=..., attn_mask=..., extra_options=...)
with q/k/v (B, H, L, D) after QK-norm and before RoPE. AdaIN of the targets' image tokens there is the
published order as it stands (no rotation undone and redone). The patch marks the block in the call's
CallLayout; the attention override then only appends the reference's keys and values for that call.
Hosts without the hook never call the patch, and the override does AdaIN itself (undo RoPE, AdaIN, redo):
feature detection by what runs, no version check. Only for families whose blocks are tagged in
transformer_options (the block is read from extra_options, a copy of them).
"""

from __future__ import annotations

from .attention_override import TransformerSharing, _adain_image_tokens_
from .call_layout import CALL_LAYOUT_KEY
from .family import TransformerFamily


class PreRopeAdaIN:
    def __init__(self, family: TransformerFamily, sharing: TransformerSharing):
        self.family = family
        self.sharing = sharing

    def __deepcopy__(self, memo):
        return self  # no state of its own; clones share it with the override

    def __call__(self, q, k, v, pe=None, attn_mask=None, extra_options=None):
        layout = (extra_options or {}).get(CALL_LAYOUT_KEY)
        # Only the model call of this patch set's own wrapper (its override, or a per-call copy of it).
        if layout is None or not layout.active or getattr(layout.owner, "sharing", None) is not self.sharing:
            return {}
        block = self.family.block_key(extra_options, layout.attention_calls)
        if block not in self.sharing.shared_blocks:
            return {}
        end = layout.image_start + layout.image_tokens
        if (
            q.dim() != 4 or k.shape != q.shape or v.shape[:3] != q.shape[:3]
            or q.shape[0] != layout.batch.rows or q.shape[2] < end
        ):
            return {}  # the override sees the call as it is and reports what it cannot read
        reference_rows, target_rows, target_chunk = layout.row_indices(q.device)
        flags = self.sharing.flags
        out = {}
        # q and k are the block's own fresh tensors (QK-norm / concatenation outputs): written in place, the
        # target rows only. v can be a view of the block's fused qkv projection: written to a copy.
        for name, tokens, wanted, in_place in (
            ("q", q, flags.adain_queries, True), ("k", k, flags.adain_keys, True), ("v", v, flags.adain_values, False),
        ):
            if wanted:
                targets = tokens.index_select(0, target_rows)
                _adain_image_tokens_(targets, tokens.index_select(0, reference_rows), target_chunk, layout, rotated=False)
                out[name] = tokens.index_copy_(0, target_rows, targets) if in_place else tokens.index_copy(0, target_rows, targets)
        layout.pre_rope_block = block
        return out
