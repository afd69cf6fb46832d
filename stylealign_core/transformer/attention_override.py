"""The transformer route's attention override: targets attend to the reference's image tokens.

Registered as transformer_options["optimized_attention_override"]; the host calls it for every attention
call as override(backend, *args, **kwargs). For a self-attention call of a shared block, with the
CallLayout the model-call wrapper left in transformer_options, for every target t and the reference r of
the same conditioning chunk (image tokens I, RoPE rotation R(p) per token, shift rotation R(delta)):
    q_t[I] = R(p) AdaIN(R(-p) q_t[I], R(-p) q_r[I])          (adain_queries; before RoPE)
    k_t[I] = R(p) AdaIN(R(-p) k_t[I], R(-p) k_r[I])          (adain_keys)
    out_t  = attention(q_t, [k_t ; lambda R(delta) k_r[I]], [v_t ; v_r[I]])
    out_r  = attention(q_r, k_r, v_r)                           (the reference: unchanged)
Statistics per (head, channel) over the image tokens, float32 (maths.adain). A model whose call attends a
suffix of its tokens to all of them (CallLayout.query_start) has its queries' image tokens read at that
offset; K/V with fewer heads than Q (grouped-query attention) are shared as they are, the backend's own
keywords (enable_gqa, scale) forwarded to both calls. Text and extra tokens are
never normalised or shared. Reference rows and target rows are separate backend calls, so any backend
(sage, flash, xformers) keeps working; reference_strength != 1 adds log(strength) to the appended keys'
logits through an additive mask on the target call. A call's own attention mask (text
padding) keeps covering each row's own keys; the appended reference keys are never masked
(attention_mask.py). Several weighted references (references.py): the references' rows are each a call
of their own keys as above; a target appends every reference's image keys and values, reference i's keys
at positions shifted by i * delta and logits shifted by log w_i, and AdaIN goes to the moments of the
references' weighted mixture (maths/reference_mixture.py). Calls of unshared blocks, inactive steps and cross-attention go to the backend
unchanged; a shared block's call whose layout the pack does not understand (other rows or token count, a
mask of another shape) too, with its cause noted in the CallLayout for the model-call wrapper's report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

from ..batch_layout import BatchLayout
from ..maths.adain import adain_affine, channel_moments, channel_stats
from ..maths.reference_mixture import mixture_stats
from ..references import reference_logit_shifts
from ..share_flags import ShareFlags
from .attention_mask import as_key_mask, extended_over_appended, rows_of
from .call_layout import CALL_LAYOUT_KEY, CallLayout
from .family import BlockKey, TransformerFamily
from .rope import ROTATIONS

@dataclass(frozen=True)
class TransformerSharing:
    """What the node chose for a transformer model."""

    shared_blocks: frozenset  # of BlockKey
    flags: ShareFlags
    key_scale: float
    position_shift: bool
    # Added to the logits of the appended reference keys (log of reference_strength); 0 = none.
    logit_shift: float = 0.0
    # Video: each target frame's queries see only the reference's same frame (CallLayout.frames); False:
    # every reference frame.
    matching_frames: bool = False


class SharedAttentionOverride:
    def __init__(self, family: TransformerFamily, sharing: TransformerSharing, previous_override: Optional[Callable] = None):
        self.family = family
        self.sharing = sharing
        self.previous_override = previous_override

    def __deepcopy__(self, memo):
        # ModelPatcher.clone deep-copies model_options; the override holds no per-call state (that lives in
        # the CallLayout), so a clone may share it.
        return self

    def _backend(self, backend: Callable, *args, **kwargs):
        if self.previous_override is not None:
            return self.previous_override(backend, *args, **kwargs)
        return backend(*args, **kwargs)

    def __call__(self, backend: Callable, *args, **kwargs):
        transformer_options = kwargs.get("transformer_options") or {}
        layout: Optional[CallLayout] = transformer_options.get(CALL_LAYOUT_KEY)
        if layout is None or (layout.owner is not None and layout.owner is not self):
            return self._backend(backend, *args, **kwargs)
        call_index = layout.attention_calls
        layout.attention_calls += 1
        block = self.family.block_key(transformer_options, call_index)
        if not layout.active or block not in self.sharing.shared_blocks:
            return self._backend(backend, *args, **kwargs)
        layout.reached_calls += 1
        adain_done = layout.pre_rope_block is not None and layout.pre_rope_block == block
        layout.pre_rope_block = None
        # A mask passed by position (some families' blocks: the 5th argument) is read like the keyword.
        call_args, mask = (args[:4], args[4]) if len(args) == 5 else (args, kwargs.get("mask"))
        heads_first = self.family.heads_first(call_args, {k: v for k, v in kwargs.items() if k != "mask"})
        if heads_first is None:
            return self._pass_through(layout, "its q/k/v format", backend, args, kwargs)
        q, k, v, heads = heads_first
        layout.follow_rope_options(transformer_options.get("rope_options"))
        call_layout = layout.for_call(call_index)  # an image-only call (refiner) has its own image_start
        tokens = call_layout.image_start + call_layout.image_tokens
        if (
            q.shape[0] != layout.batch.rows or k.shape[0] != q.shape[0] or v.shape[0] != q.shape[0]
            or q.shape[2] != k.shape[2] - call_layout.query_start or k.shape[2] != v.shape[2] or k.shape[2] < tokens
            or (call_layout.call_tokens is not None and k.shape[2] != call_layout.call_tokens)
        ):
            return self._pass_through(layout, "its rows or token count", backend, args, kwargs)
        if mask is not None:
            mask = as_key_mask(mask, q.shape[0], heads, q.shape[2], k.shape[2])
            if mask is None:
                return self._pass_through(layout, "its attention mask's shape", backend, args, kwargs)
        layout.shared_calls += 1
        call_kwargs = {key: value for key, value in kwargs.items() if key != "mask"}
        return self._shared(backend, q, k, v, heads, mask, call_layout, call_kwargs, adain_done)

    def _pass_through(self, layout: CallLayout, cause: str, backend, args, kwargs):
        """A call of a shared block whose layout the pack does not understand: unchanged, the cause kept for
        the model-call wrapper's report (an error when no call of the model call could be shared)."""
        layout.pass_causes.add(cause)
        return self._backend(backend, *args, **kwargs)

    def _shared(self, backend, q, k, v, heads, mask, layout: CallLayout, kwargs: dict, adain_done: bool = False):
        """adain_done: the host's pre-RoPE hook already normalised this call's targets (pre_rope_patch.py)."""
        reference_rows, target_rows, target_chunk = layout.row_indices(q.device)
        flags = ShareFlags(False, False, False, self.sharing.flags.share) if adain_done else self.sharing.flags
        call_kwargs = dict(kwargs, skip_reshape=True)
        call_kwargs.pop("heads", None)
        image = layout.image_slice

        # index_select copies: the targets' q/k/v are ours to normalise in place.
        q_r, k_r, v_r = (t.index_select(0, reference_rows) for t in (q, k, v))
        q_t, k_t, v_t = (t.index_select(0, target_rows) for t in (q, k, v))
        if flags.adain_queries:
            _adain_image_tokens_(q_t, q_r, target_chunk, layout, rotated=True, query_start=layout.query_start)
        if flags.adain_keys:
            _adain_image_tokens_(k_t, k_r, target_chunk, layout, rotated=True)
        if flags.adain_values:
            _adain_image_tokens_(v_t, v_r, target_chunk, layout, rotated=False)

        reference_mask, target_mask = rows_of(mask, reference_rows), rows_of(mask, target_rows)
        if flags.share:
            batch = layout.batch
            reference_keys = k_r[:, :, image]
            if self.sharing.position_shift and layout.shift_rotation is not None:
                reference_keys = _shifted_positions(reference_keys, layout.shift_rotation, batch, ROTATIONS[layout.rope_scheme][0])
            if self.sharing.key_scale != 1.0:
                reference_keys = reference_keys.float() * self.sharing.key_scale
            reference_keys = reference_keys.to(k.dtype)
            k_t = torch.cat([k_t, _per_target(reference_keys, target_chunk, batch)], dim=2)
            v_t = torch.cat([v_t, _per_target(v_r[:, :, image], target_chunk, batch)], dim=2)
            shifts = reference_logit_shifts(self.sharing.logit_shift, batch.weights)
            target_mask = extended_over_appended(
                target_mask, k.shape[2], len(shifts) * layout.image_tokens, shifts if batch.several else shifts[0],
                q.dtype, q.device)

        if flags.share and self.sharing.matching_frames and layout.frames > 1:
            out_t = self._frame_matched(backend, q_t, k_t, v_t, heads, call_kwargs, target_mask, k.shape[2], layout)
        else:
            out_t = self._backend(backend, q_t, k_t, v_t, heads, **_with_mask(call_kwargs, target_mask))
        out_r = self._backend(backend, q_r, k_r, v_r, heads, **_with_mask(call_kwargs, reference_mask))
        out = out_t.new_empty((layout.batch.rows,) + tuple(out_t.shape[1:]))
        out.index_copy_(0, target_rows, out_t)
        out.index_copy_(0, reference_rows, out_r)
        return out


    def _frame_matched(self, backend, q, k, v, heads, kwargs: dict, mask, own_keys: int, layout: CallLayout):
        """The targets' attention with matching frames: the image queries of frame f see the target's own
        keys and frame f of the appended reference image keys; queries outside the image see them all.
        One backend call per frame rather than a mask over every appended key: cheaper (each query meets
        own + one frame of keys) and mask-free backends (flash, sage) keep working. `mask`: the target
        call's mask over [own keys, appended keys] (its additive reference logits included) or None."""
        copies = (k.shape[2] - own_keys) // layout.image_tokens  # appended image ranges, frames in order
        token_axis = 2 if kwargs.get("skip_output_reshape") else 1
        queries = q.shape[2]
        parts = layout.frame_parts(own_keys, copies, queries, q.device)
        out = None
        for rows, keys in parts:
            part_mask = mask
            if part_mask is not None:
                part_mask = part_mask if part_mask.shape[-2] == 1 else part_mask.index_select(-2, rows)
                part_mask = part_mask if keys is None else part_mask.index_select(-1, keys)
            k_part, v_part = (k, v) if keys is None else (k.index_select(2, keys), v.index_select(2, keys))
            result = self._backend(backend, q.index_select(2, rows), k_part, v_part, heads, **_with_mask(kwargs, part_mask))
            if out is None:
                shape = list(result.shape)
                shape[token_axis] = queries
                out = result.new_empty(shape)
            out.index_copy_(token_axis, rows, result)
        return out

def _shifted_positions(reference_keys: torch.Tensor, shift_rotation: torch.Tensor, batch: BatchLayout, rotate: Callable) -> torch.Tensor:
    """The references' image keys (chunks * n, H, L, D), reference i (1..n) rotated by R(i * delta): moved i
    image widths along the width axis, so no two references (nor a reference and the target) collide.
    R(i * delta) = R(delta)^i (RoPE angles are linear in the position), taken in float64. `rotate`: the
    layout's RoPE scheme (interleaved or split-half pairs)."""
    if not batch.several:
        return rotate(reference_keys, shift_rotation)
    count = len(batch.reference_slots)
    per_reference = reference_keys.reshape(batch.chunks, count, *reference_keys.shape[1:])
    shift = shift_rotation.double()
    return torch.stack([
        rotate(per_reference[:, i - 1], torch.linalg.matrix_power(shift, i).float()) for i in range(1, count + 1)
    ], dim=1).reshape(reference_keys.shape)


def _per_target(reference_tokens: torch.Tensor, target_chunk: torch.Tensor, batch: BatchLayout) -> torch.Tensor:
    """(chunks * n, H, L, D) reference tokens -> (targets, H, n * L, D): each target's chunk's references,
    in reference order along the token axis."""
    if not batch.several:
        return reference_tokens.index_select(0, target_chunk)
    count = len(batch.reference_slots)
    per_chunk = reference_tokens.reshape(batch.chunks, count, *reference_tokens.shape[1:]).index_select(0, target_chunk)
    targets, _, heads, tokens, channels = per_chunk.shape
    return per_chunk.transpose(1, 2).reshape(targets, heads, count * tokens, channels)


def _with_mask(kwargs: dict, mask: Optional[torch.Tensor]) -> dict:
    return kwargs if mask is None else dict(kwargs, mask=mask)


def _reference_stats(references: torch.Tensor, batch: BatchLayout) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) per chunk, (chunks, H, 1, D), of the chunk's reference, or of its references' weighted
    mixture (references (chunks * n, H, L, D), maths/reference_mixture.py)."""
    if not batch.several:
        return channel_stats(references)
    mean, variance = channel_moments(references)
    count = len(batch.reference_slots)
    mean, std = mixture_stats(
        mean.reshape(batch.chunks, count, *mean.shape[1:]), variance.reshape(batch.chunks, count, *variance.shape[1:]),
        batch.normalised_weights, axis=1)
    return mean.squeeze(1), std.squeeze(1)


def _adain_image_tokens_(targets: torch.Tensor, references: torch.Tensor, target_chunk: torch.Tensor, layout: CallLayout, rotated: bool, query_start: int = 0) -> None:
    """In place: the targets' image tokens AdaIN-normalised to their chunk's reference, before RoPE.

    targets (T, H, L, D) and references (chunks, H, L, D) as the backend receives them; statistics per
    (head, channel) over the image tokens in float32. query_start: the tensors' first token is that token of
    the joint sequence (queries that are a suffix of the keys).
    """
    image = slice(layout.image_start - query_start, layout.image_start - query_start + layout.image_tokens)
    rotations = layout.image_rotations if rotated else None
    rotate, unrotate = ROTATIONS[layout.rope_scheme]

    def before_rope(tokens: torch.Tensor) -> torch.Tensor:
        return unrotate(tokens, rotations) if rotations is not None else tokens.float()

    reference_mean, reference_std = _reference_stats(before_rope(references[:, :, image]), layout.batch)
    target_tokens = before_rope(targets[:, :, image])
    mean, std = channel_stats(target_tokens)
    scale, shift = adain_affine(mean, std, reference_mean.index_select(0, target_chunk), reference_std.index_select(0, target_chunk))
    normalised = torch.addcmul(shift, target_tokens, scale)
    if rotations is not None:
        normalised = rotate(normalised, rotations)
    targets[:, :, image] = normalised.to(targets.dtype)
