"""The attn1 patch: targets attend to the reference, with AdaIN-normalised queries and keys.

ComfyUI calls an attn1 patch in every UNet transformer block with the normalised hidden states that feed
the q, k and v projections of self-attention, and uses what it returns as those inputs. Here, for every
target image t and the reference r of the same conditioning chunk:
    q_in(t) = AdaIN(q_in(t), q_in(r))                      (adain_queries)
    k_in(t) = [AdaIN(k_in(t), k_in(r)) ; k_in(r)]          (adain_keys, share_attention)
    v_in(t) = [v_in(t) ; v_in(r)]                          (adain_values would normalise v_in(t) too)
The reference gets [k_in(r) ; k_in(r)]: attending to the same tokens twice leaves its output unchanged,
and AdaIN against its own statistics is an exact identity, so it is generated as without the patch.
Targets never see each other's tokens.
Several weighted references (references.py): k_in(t) = [AdaIN(k_in(t), mixture) ; k_in(r_1) ; ... ; k_in(r_n)],
AdaIN to the moments of the references' weighted mixture (maths/reference_mixture.py), and each reference
gets its own tokens n times more (unchanged output); the attention override shifts block i's logits by
log w_i. That case takes the per-tensor path below (the fused pass knows one reference only).

Cost: this runs in every self-attention layer at every step. In self-attention the host passes one tensor
as q_in, k_in and v_in; that case goes to fused_adain (statistics once, AdaIN as one float32 affine pass,
each distinct output buffer written once, a fused Triton kernel pair on CUDA with an exact torch path
elsewhere). Inputs that are different tensors take the per-tensor path below, with the same values.
"""

from __future__ import annotations

from typing import Optional

import torch

from ..maths.adain import apply_affine
from .reference_affine import affine_to_references
from ..batch_layout import BatchLayout, batch_layout
from ..maths.fused_adain import fused_share_reference
from .layer_selection import LayerKey, block_kind_selected
from ..options import StyleAlignedOptions
from ..references import reference_logit_shifts
from .patch_runtime import PatchRuntime, PendingLogitShift
from ..share_flags import ShareFlags, share_flags
from .projected_adain import ProjectedAdain


def _grouped(tokens: torch.Tensor, layout: BatchLayout) -> torch.Tensor:
    """(rows, L, C) -> (chunks, images, L, C). Also regroups a tensor another patch split into
    image-major tiles (rows * tiles, L / tiles, C): per-channel statistics ignore token order."""
    return tokens.reshape(layout.chunks, layout.images_per_chunk, -1, tokens.shape[-1])


def _adain_to_reference(tokens: torch.Tensor, layout: BatchLayout) -> torch.Tensor:
    grouped = _grouped(tokens, layout)
    scale, shift = affine_to_references(grouped, layout)
    return apply_affine(grouped, scale, shift).reshape(tokens.shape)


def _append_several(grouped: torch.Tensor, layout: BatchLayout) -> torch.Tensor:
    """(chunks, images, L, C) -> (chunks, images, (1 + n) L, C): each image's own tokens, then n blocks; block
    i holds reference i's tokens for a target and the image's own tokens for a reference (which so attends to
    nothing new). Written into one buffer, each block from an expanded view (no intermediate copies)."""
    chunks, images, tokens, channels = grouped.shape
    slots = list(layout.reference_slots)
    out = grouped.new_empty((chunks, images, 1 + len(slots), tokens, channels))
    out[:, :, 0] = grouped
    for block, slot in enumerate(slots, start=1):
        out[:, :, block] = grouped[:, slot : slot + 1].expand(chunks, images, tokens, channels)
        out[:, slots, block] = grouped[:, slots]
    return out.view(chunks, images, -1, channels)


def _append_reference_tokens(tokens: torch.Tensor, layout: BatchLayout) -> torch.Tensor:
    grouped = _grouped(tokens, layout)
    if layout.several:
        return _append_several(grouped, layout).reshape(tokens.shape[0], -1, tokens.shape[-1])
    r = layout.reference_index
    # expand_as is a view: cat reads the reference's rows in place, no expanded copy is made.
    reference = grouped[:, r : r + 1].expand_as(grouped)
    return torch.cat([grouped, reference], dim=2).reshape(tokens.shape[0], -1, tokens.shape[-1])


def _share_separate_inputs(q_in, k_in, v_in, layout: BatchLayout, flags: ShareFlags):
    """Inputs that are different tensors (another patch changed some): each is normalised at most once
    and each distinct k/v source gets the reference's tokens appended once."""
    normalised: dict[int, torch.Tensor] = {}
    appended: dict[int, torch.Tensor] = {}

    def adain_once(tokens: torch.Tensor) -> torch.Tensor:
        key = id(tokens)
        if key not in normalised:
            normalised[key] = _adain_to_reference(tokens, layout)
        return normalised[key]

    def append_once(tokens: torch.Tensor) -> torch.Tensor:
        key = id(tokens)
        if key not in appended:
            appended[key] = _append_reference_tokens(tokens, layout)
        return appended[key]

    q_out = adain_once(q_in) if flags.adain_queries else q_in
    k_out = adain_once(k_in) if flags.adain_keys else k_in
    v_out = adain_once(v_in) if flags.adain_values else v_in
    if flags.share:
        k_out = append_once(k_out)
        v_out = append_once(v_out)
    return q_out, k_out, v_out


def _share(q_in, k_in, v_in, layout: BatchLayout, flags: ShareFlags):
    if q_in is k_in and k_in is v_in and q_in.dim() == 3 and q_in.shape[0] == layout.rows and not layout.several:
        # Self-attention: one input tensor. Statistics once, one affine pass, one buffer per distinct
        # output; a fused Triton kernel on CUDA.
        return fused_share_reference(q_in, layout, flags)
    return _share_separate_inputs(q_in, k_in, v_in, layout, flags)


def share_with_reference(
    q_in: torch.Tensor, k_in: torch.Tensor, v_in: torch.Tensor, layout: BatchLayout, options: StyleAlignedOptions
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The maths of the patch for one layer (see the module docstring).

    When k and v are normalised alike (both or neither), one tensor is returned for both.
    """
    return _share(q_in, k_in, v_in, layout, share_flags(options))


class SharedAttentionPatch:
    """The callable registered with ModelPatcher.set_model_attn1_patch."""

    def __init__(
        self,
        options: StyleAlignedOptions,
        runtime: PatchRuntime,
        shared_layers: Optional[frozenset[LayerKey]] = None,
    ) -> None:
        self.options = options
        self.runtime = runtime
        # None: the model's layers could not be listed; then every layer of a selected block kind shares.
        self.shared_layers = shared_layers
        self._layouts: dict[tuple, BatchLayout] = {}
        flags = share_flags(options)
        # With AdaIN on the projections the inputs are only shared here; the attention override normalises
        # the projected q/k/v (projected_adain.py).
        self._projected = options.adain_on_projections and flags.any_adain
        self._flags = ShareFlags(False, False, False, flags.share) if self._projected else flags

    def layer_shares(self, extra_options: dict) -> bool:
        block = extra_options.get("block")
        if block is None:
            return self.shared_layers is None
        if self.shared_layers is None:
            return block_kind_selected(block[0], self.options)
        return (block[0], block[1], extra_options.get("block_index", 0)) in self.shared_layers

    def _is_active(self, extra_options: dict) -> bool:
        if self.runtime.current_call is not None:
            return self.runtime.current_call.active
        # No model-call wrapper ran (another node replaced it): read this layer's sigma instead.
        sigmas = extra_options.get("sigmas")
        return sigmas is None or self.options.sigma_is_active(float(sigmas.max()))

    def _layout(self, rows: int, cond_or_uncond) -> BatchLayout:
        # The layout follows each call's own rows and chunks: the host may split cond and uncond
        # into separate calls, or another wrapper may split a call further.
        key = (rows, tuple(cond_or_uncond or ()))
        layout = self._layouts.get(key)
        if layout is None:
            layout = self._layouts[key] = batch_layout(
                rows, cond_or_uncond, self.options.reference_index, references=self.options.references)
        return layout

    def _replaced_by_another_node(self, extra_options: dict) -> bool:
        call = self.runtime.current_call
        block = extra_options.get("block")
        return call is not None and block is not None and call.layer_replaced(block, extra_options.get("block_index", 0))

    def __deepcopy__(self, memo):
        # ModelPatcher.clone deep-copies model_options; this patch must keep sharing the runtime with the
        # model-call wrapper (which the host copies by reference).
        return self

    def __call__(self, q_in, k_in, v_in, extra_options):
        self.runtime.patch_calls += 1
        self.runtime.count_missed(self.runtime.take_pending_shift())  # the previous layer's attention never read it
        if (
            not self.layer_shares(extra_options)
            or not self._is_active(extra_options)
            or self._replaced_by_another_node(extra_options)
        ):
            return q_in, k_in, v_in
        layout = self._layout(k_in.shape[0], extra_options.get("cond_or_uncond"))
        if v_in.shape[0] != layout.rows:
            return q_in, k_in, v_in
        if self.options.full_attention_sharing:
            # The attention override runs each chunk as one sequence (full_sharing.py); inputs stay as they are.
            tokens = k_in.shape[-2]
            self.runtime.pending_shift = PendingLogitShift(own_tokens=tokens, total_tokens=tokens, shift=0.0, full_share=layout)
            return q_in, k_in, v_in
        q_out, k_out, v_out = _share(q_in, k_in, v_in, layout, self._flags)
        if k_out.shape[-2] != k_in.shape[-2] or self._projected:
            # Read by the attention override: the reference strength, keys to re-tile when another patch
            # (HyperTile) splits the queries into tiles after or before this one, the projected AdaIN.
            options = self.options
            projected = (
                ProjectedAdain(layout, options.adain_queries, options.adain_keys, options.adain_values) if self._projected else None
            )
            shifts = reference_logit_shifts(options.logit_shift, layout.weights)
            self.runtime.pending_shift = PendingLogitShift(
                own_tokens=k_in.shape[-2], total_tokens=k_out.shape[-2], shift=shifts[0], projected=projected,
                block_shifts=shifts if layout.several else (),
            )
        return q_out, k_out, v_out
