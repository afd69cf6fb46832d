"""Several references in one batch, each with a weight (StyleAlignedReferences).

Reference i (i = 1..n, in the order listed) sits at a slot of every conditioning chunk and has a weight
w_i > 0. In every shared layer each target attends to its own keys and to every reference's keys, the
logits of reference i's keys shifted by log w_i (so a weight is that reference's reference_strength), and
AdaIN takes the moments of the weighted mixture of the references' token statistics
(maths/reference_mixture.py, normalised weights w_i / sum w). References never attend to each other and are
generated as without the pack; targets never see each other. One reference of weight 1 is the paper.

Listing: a weight of 0 drops that reference (its slot is then an ordinary target); a slot listed twice, a
negative or non-finite weight, or every weight 0 is an error naming the node and input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from .errors import StyleAlignedError

REFERENCES_NODE = "StyleAlignedReferences"


@dataclass(frozen=True)
class ReferenceEntry:
    slot: int
    weight: float


@dataclass(frozen=True)
class ReferenceList:
    """What StyleAlignedReferences nodes list, in order, zero weights included (the node's output)."""

    entries: tuple[ReferenceEntry, ...] = ()

    def plus(self, slot: int, weight: float, node_name: str = REFERENCES_NODE) -> "ReferenceList":
        """This list with one more reference at its end; a slot already listed is an error naming the node."""
        if any(entry.slot == slot for entry in self.entries):
            raise StyleAlignedError(
                f"{node_name}: slot {slot} is listed twice (the references input already holds it). Give each "
                f"reference its own slot of the latent batch."
            )
        if not (isinstance(weight, (int, float)) and math.isfinite(weight) and weight >= 0):
            raise StyleAlignedError(f"{node_name}: weight is {weight!r}; set it to a finite number of at least 0.")
        return ReferenceList(self.entries + (ReferenceEntry(int(slot), float(weight)),))

    def describe(self) -> str:
        return ", ".join(f"slot {entry.slot} (weight {entry.weight:g})" for entry in self.entries)


@dataclass(frozen=True)
class WeightedReferences:
    """The references that take part: slots in listed order, weights > 0 (zero weights dropped)."""

    slots: tuple[int, ...]
    weights: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.slots or len(self.slots) != len(self.weights) or len(set(self.slots)) != len(self.slots):
            raise ValueError(f"references {self.slots} with weights {self.weights}")
        if not all(math.isfinite(w) and w > 0 for w in self.weights):
            raise ValueError(f"reference weights must be > 0, got {self.weights}")

    @property
    def several(self) -> bool:
        return len(self.slots) > 1


def weighted_references(listed: ReferenceList, node_name: str, input_name: str = "references") -> WeightedReferences:
    """The references of weight > 0 from a listing; every weight 0 (or nothing listed) is an error naming
    `node_name`'s input and the references node's weight input."""
    kept = [entry for entry in listed.entries if entry.weight > 0]
    if not kept:
        raise StyleAlignedError(
            f"{node_name}: {input_name} lists {listed.describe() or 'no reference'}: every weight is 0, so no "
            f"reference would be shared. Give at least one reference a weight above 0 ({REFERENCES_NODE}, input "
            f"weight), or disconnect {input_name}."
        )
    return WeightedReferences(tuple(entry.slot for entry in kept), tuple(entry.weight for entry in kept))


def reference_logit_shifts(base_shift: float, weights: Sequence[float]) -> tuple[float, ...]:
    """The additive logit shift of each reference's keys: base_shift (log reference_strength) + log w_i.
    No weights: one reference of weight 1, (base_shift,)."""
    if not weights:
        return (base_shift,)
    return tuple(base_shift + math.log(weight) for weight in weights)
