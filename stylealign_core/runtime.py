"""State shared by the pieces of one patch during a model call.

The model-call wrapper runs once per UNet call and decides whether the schedule is active; the attention
patch, which runs in every self-attention layer, only reads it. This keeps per-layer work free of host
syncs such as reading a sigma off the GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
import threading
from typing import Optional


@dataclass(frozen=True)
class CallContext:
    """What the model-call wrapper decided for the current UNet call."""

    active: bool
    # Layers whose self-attention another node replaced in this call (attn1 replace patch keys).
    replaced_layers: frozenset = frozenset()

    def layer_replaced(self, block: tuple, block_index: int) -> bool:
        return (block[0], block[1], block_index) in self.replaced_layers or tuple(block) in self.replaced_layers


@dataclass(frozen=True)
class PendingLogitShift:
    """Written by the attention patch, consumed by the very next attention call of that layer."""

    own_tokens: int
    total_tokens: int
    shift: float


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

    current_call = property(lambda self: self._state().current_call, lambda self, value: setattr(self._state(), "current_call", value))
    pending_shift = property(lambda self: self._state().pending_shift, lambda self, value: setattr(self._state(), "pending_shift", value))
    patch_calls = property(lambda self: self._state().patch_calls, lambda self, value: setattr(self._state(), "patch_calls", value))
    # Logit shifts the patch left that no attention call consumed (the override was not reached).
    missed_shifts = property(lambda self: self._state().missed_shifts, lambda self, value: setattr(self._state(), "missed_shifts", value))

    def __deepcopy__(self, memo):
        # ModelPatcher.clone deep-copies model_options; the pieces of one patch must keep sharing this.
        return self

    def take_pending_shift(self) -> Optional[PendingLogitShift]:
        state = self._state()
        pending, state.pending_shift = state.pending_shift, None
        return pending


@dataclass
class _CallState:
    current_call: Optional[CallContext] = None
    pending_shift: Optional[PendingLogitShift] = None
    patch_calls: int = 0
    missed_shifts: int = 0
