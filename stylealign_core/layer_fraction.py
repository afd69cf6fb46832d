"""Which of n layers (UNet) or blocks (transformer) a shared-layer fraction picks: spread evenly over the
network, ends included. Both routes' selections use it."""

from __future__ import annotations


def evenly_spread(count: int, fraction: float) -> list[int]:
    """Indices of round(fraction * count) items spread evenly over range(count)."""
    chosen = round(max(0.0, min(1.0, fraction)) * count)
    if chosen <= 0:
        return []
    # Centre of each of `chosen` equal bins: spreads the picks over the whole network, ends included.
    return sorted({min(count - 1, int((i + 0.5) * count / chosen)) for i in range(chosen)})
