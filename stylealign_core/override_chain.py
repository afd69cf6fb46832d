"""Keeping the pack's attention override in the host's one override slot for every model call.

A later node may replace the slot without chaining (ComfyUI 0.33's ModelAttentionBackend through
ModelPatcher.set_model_optimized_attention). The model-call wrappers then put, for that call only, a copy
of the pack's override in front of whatever the slot holds, so both effects stay: the pack's sharing and
the other node's backend choice (called as the pack's backend). An override that chains the pack's (its
`previous_override` leads there) is left as it is.
"""

from __future__ import annotations

import copy
from typing import Callable, Optional

OVERRIDE_KEY = "optimized_attention_override"
_MAX_CHAIN = 64  # overrides wrapping overrides; a longer (or cyclic) chain is read as "not found"


def reaches(current: Optional[Callable], ours: Callable) -> bool:
    """Whether `ours` is `current` or is chained behind it through previous_override links."""
    for _ in range(_MAX_CHAIN):
        if current is None:
            return False
        if current is ours:
            return True
        current = getattr(current, "previous_override", None)
    return False


def override_for_call(ours: Optional[Callable], transformer_options: dict) -> Optional[Callable]:
    """The override that carries the pack into this model call: `ours` when the slot reaches it, else a
    copy of it chaining whatever the slot holds now. Shallow copy: it shares ours' state and settings."""
    if ours is None:
        return None
    current = transformer_options.get(OVERRIDE_KEY)
    if reaches(current, ours):
        return ours
    chained = copy.copy(ours)
    chained.previous_override = current
    return chained
