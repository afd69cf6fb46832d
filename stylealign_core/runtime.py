"""State shared by the pieces of one patch during a model call.

The model-call wrapper runs once per UNet call and decides whether the schedule is active; the attention
patch, which runs in every self-attention layer, only reads it. This keeps per-layer work free of host
syncs such as reading a sigma off the GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from .batch_layout import BatchLayout
    from .unet.projected_adain import ProjectedAdain


@dataclass(frozen=True)
class CallContext:
    """What the model-call wrapper decided for the current UNet call."""

    active: bool
    # Layers whose self-attention another node replaced in this call (attn1 replace patch keys).
    replaced_layers: frozenset = frozenset()
    # The call's batch layout (for the shared GroupNorm, which sees only its input tensor).
    layout: Optional["BatchLayout"] = None

    def layer_replaced(self, block: tuple, block_index: int) -> bool:
        return (block[0], block[1], block_index) in self.replaced_layers or tuple(block) in self.replaced_layers


@dataclass(frozen=True)
class PendingLogitShift:
    """Written by the attention patch, consumed by the very next attention call of that layer."""

    own_tokens: int
    total_tokens: int
    shift: float
    # AdaIN on the projected q/k/v, for the attention call to apply (adain_on "projections (paper)").
    projected: Optional["ProjectedAdain"] = None
    # Full attention sharing (full_attention_sharing): the call's batch layout; the attention call then runs
    # every chunk as one sequence of all its images' tokens.
    full_share: Optional["BatchLayout"] = None


class PatchRuntime:
    def __init__(self) -> None:
        self.current_call: Optional[CallContext] = None
        self.patch_calls = 0
        self.pending_shift: Optional[PendingLogitShift] = None
        # Layers of the current model call whose projected AdaIN no attention call applied.
        self.projected_adain_missed = 0
        self.shared_norm_calls = 0

    def __deepcopy__(self, memo):
        # ModelPatcher.clone deep-copies model_options; the pieces of one patch must keep sharing this.
        return self

    def take_pending_shift(self) -> Optional[PendingLogitShift]:
        pending, self.pending_shift = self.pending_shift, None
        return pending
