"""Which transformer blocks share: block groups chosen by the node, then the shared-layer fraction."""

from __future__ import annotations

from ..layer_fraction import evenly_spread
from .family import BlockKey, TransformerFamily

BLOCK_CHOICES = ("auto", "all", "double", "single")


def chosen_groups(family: TransformerFamily, choice: str) -> tuple[str, ...]:
    """The family's groups for the node's transformer_blocks choice ("auto": the family's default).
    A choice the family does not have (e.g. "single" on a model with one kind of block) selects all."""
    if choice == "auto":
        return family.default_groups
    if choice in family.groups:
        return (choice,)
    return family.groups


def select_shared_blocks(
    family: TransformerFamily, block_counts: dict[str, int], choice: str, fraction: float
) -> frozenset[BlockKey]:
    """block_counts: blocks per group. The chosen groups' blocks in execution order, thinned evenly to
    round(fraction * count)."""
    groups = chosen_groups(family, choice)
    candidates = [(group, index) for group in family.groups if group in groups for index in range(block_counts.get(group, 0))]
    return frozenset(candidates[i] for i in evenly_spread(len(candidates), fraction))
