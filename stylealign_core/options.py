"""The settings of one StyleAligned patch, as plain data: one object for both routes, built from the
StyleAlignedPatch node's inputs (the node converts its percents to sigmas), with the defaults policy that
the node's "auto" inputs stand for."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from .references import WeightedReferences


@dataclass(frozen=True)
class StyleAlignedOptions:
    """Defaults reproduce the paper: AdaIN on the query and key inputs, reference tokens appended to the
    key and value inputs, values not normalised, every self-attention layer, the whole schedule."""

    reference_index: int = 0
    share_attention: bool = True
    adain_queries: bool = True
    adain_keys: bool = True
    adain_values: bool = False
    # Multiplies the attention weight of every reference token (adds log(strength) to its logits); 1 = paper.
    reference_strength: float = 1.0
    share_input_blocks: bool = True
    share_middle_block: bool = True
    share_output_blocks: bool = True
    # Fraction of the selected self-attention layers that share, spread evenly over the network.
    shared_layer_fraction: float = 1.0
    # Sharing is active while sigma_end <= sigma <= sigma_start (the node converts percents to sigmas).
    sigma_start: float = math.inf
    sigma_end: float = 0.0
    # UNets: AdaIN on the projected q/k/v (to_q/to_k/to_v outputs, the authors' code) instead of on the
    # projection inputs the attn1 patch receives.
    adain_on_projections: bool = False
    # UNets: the authors' "full attention sharing" baseline: every image of a chunk attends to every image of
    # that chunk (the reference too, so it changes); no AdaIN, no reference strength.
    full_attention_sharing: bool = False
    # UNets: every GroupNorm takes a target's statistics over its own and its chunk's reference's feature
    # maps (the authors' share_group_norm); the reference normalises alone.
    share_group_norm: bool = False
    # Several weighted references (StyleAlignedReferences); reference_index is then the first one's slot.
    # None: the one reference at reference_index, weight 1.
    references: Optional[WeightedReferences] = None
    # Transformers: which block groups share ("auto": the family's default groups, block_selection.py).
    transformer_blocks: str = "auto"
    # Transformers: AlignedGen's ShiftPE (the reference's keys rotated as if it sat right of the target).
    shift_reference_positions: bool = True
    # Transformers: lambda, the scale on the reference's keys; 0 = "auto", the family's default_key_scale.
    reference_key_scale: float = 0.0
    # Video transformers: each target frame sees only the reference's frame at the same time (the node's
    # shared_frames "matching frames"); False: every reference frame.
    matching_frames: bool = False

    def key_scale(self, family_default: float) -> float:
        """lambda for a transformer family: reference_key_scale, or the family's default for "auto" (0)."""
        return self.reference_key_scale if self.reference_key_scale > 0 else family_default

    @property
    def attention_logit_shift(self) -> float:
        """The shift the transformer route's attention adds to the reference tokens' logits: log(strength)
        while sharing with a strength other than 1; 0 when the paper's strength 1 needs none, and when
        strength 0 appends no reference tokens at all (share_flags.py)."""
        return self.logit_shift if self.needs_logit_shift and self.reference_strength > 0 else 0.0

    @property
    def logit_shift(self) -> float:
        """The additive shift on the logits of the reference tokens (0 for the paper's strength 1)."""
        return math.log(self.reference_strength) if self.reference_strength > 0 else -math.inf

    @property
    def needs_logit_shift(self) -> bool:
        return self.share_attention and self.reference_strength != 1.0

    def sigma_is_active(self, sigma: float) -> bool:
        return self.sigma_end <= sigma <= self.sigma_start
