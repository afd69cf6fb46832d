"""State shared by the pieces of one UNet patch during a model call.

The model-call wrapper runs once per UNet call and decides whether the schedule is active; the attention
patch, which runs in every self-attention layer, only reads it. This keeps per-layer work free of host
syncs such as reading a sigma off the GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
import threading
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from ..batch_layout import BatchLayout
    from .projected_adain import ProjectedAdain


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
    # Several references: the keys are [own ; reference 1 ; ... ; reference n], each block own_tokens long,
    # block i's logits shifted by block_shifts[i] (log of reference_strength * w_i); () = one block, `shift`.
    block_shifts: tuple = ()


class PatchRuntime:
    """The per-call state of one patch (the current call, the pending logit shift, the patch-call count),
    kept per thread: clones of a patched model share this object (host multi-GPU sampling runs one step's
    chunks on clones in threads), and nothing one model call writes may reach a concurrent call of a clone.
    A model call and its attention patches and override always run on one thread."""

    def __init__(self) -> None:
        self._local = threading.local()

    def _state(self) -> "_CallState":
        state = getattr(self._local, "state", None)
        if state is None:
            state = self._local.state = _CallState()
        return state

    def __deepcopy__(self, memo):
        # ModelPatcher.clone deep-copies model_options; the pieces of one patch must keep sharing this.
        return self

    def count_missed(self, pending: Optional[PendingLogitShift]) -> None:
        """A pending shift no attention call took: the override was not reached for that layer."""
        if pending is not None:
            self.missed_shifts += 1
            if pending.projected is not None:
                self.projected_adain_missed += 1

    def take_pending_shift(self) -> Optional[PendingLogitShift]:
        state = self._state()
        pending, state.pending_shift = state.pending_shift, None
        return pending


@dataclass
class _CallState:
    current_call: Optional[CallContext] = None
    pending_shift: Optional[PendingLogitShift] = None
    patch_calls: int = 0
    # Logit shifts the patch left that no attention call consumed (the override was not reached).
    missed_shifts: int = 0
    # Layers of the current model call whose projected AdaIN no attention call applied.
    projected_adain_missed: int = 0


def _per_thread(name: str) -> property:
    return property(lambda self: getattr(self._state(), name), lambda self, value: setattr(self._state(), name, value))


# Every field of _CallState reads and writes the calling thread's copy (runtime.patch_calls, ...).
for _field in fields(_CallState):
    setattr(PatchRuntime, _field.name, _per_thread(_field.name))
