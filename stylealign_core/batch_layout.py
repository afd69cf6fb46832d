"""Where the reference sits in a model call's batch.

ComfyUI evaluates the latent batch of B images once per conditioning chunk (uncond, cond, area conds...)
and stacks the chunks: a call holds len(cond_or_uncond) * B rows, and the reference is slot r of every
chunk. Nothing here assumes two halves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .errors import StyleAlignedError
from .references import REFERENCES_NODE, WeightedReferences

NODE_NAME = "StyleAlignedPatch"


@dataclass(frozen=True)
class BatchLayout:
    chunks: int
    images_per_chunk: int
    reference_index: int
    # Several weighted references (references.py): the slots of references 2..n in listed order, and every
    # reference's weight (reference_index's first). Empty: one reference of weight 1, the paper's layout.
    more_references: tuple[int, ...] = ()
    weights: tuple[float, ...] = ()

    @property
    def rows(self) -> int:
        return self.chunks * self.images_per_chunk

    @property
    def several(self) -> bool:
        return bool(self.more_references)

    @property
    def reference_slots(self) -> tuple[int, ...]:
        """Every reference's slot in a chunk, reference 1 first."""
        return (self.reference_index,) + self.more_references

    @property
    def normalised_weights(self) -> tuple[float, ...]:
        """w_i / sum w, in reference order (one reference: (1.0,))."""
        weights = self.weights or (1.0,) * len(self.reference_slots)
        total = sum(weights)
        return tuple(weight / total for weight in weights)

    def reference_rows(self) -> list[int]:
        """The rows of reference 1 (reference_index), one per chunk: the slot a real image is held on."""
        return [chunk * self.images_per_chunk + self.reference_index for chunk in range(self.chunks)]

    def all_reference_rows(self) -> list[int]:
        """Every reference's rows, chunk by chunk, references in order within a chunk."""
        return [chunk * self.images_per_chunk + slot for chunk in range(self.chunks) for slot in self.reference_slots]

    def target_rows(self) -> list[int]:
        reference = set(self.all_reference_rows())
        return [row for row in range(self.rows) if row not in reference]


def batch_layout(
    rows: int, cond_or_uncond, reference_index: int, real_reference: bool = False,
    references: Optional[WeightedReferences] = None,
) -> BatchLayout:
    """Split `rows` model-call rows into chunks and check that the reference slot exists (with `references`,
    from StyleAlignedReferences, every listed slot: reference_index is then the first of them).

    Raises StyleAlignedError with what to change when the batch cannot be style-aligned.
    """
    chunks = len(cond_or_uncond) if cond_or_uncond else 1
    if rows % chunks != 0:
        raise StyleAlignedError(
            f"{NODE_NAME}: the model was called with {rows} rows for {chunks} conditioning chunks; the rows must "
            f"be a whole number of latent batches. Use conditioning whose batch size is 1 or equals the latent "
            f"batch size."
        )
    images = rows // chunks
    if images < 2 and real_reference:
        raise StyleAlignedError(
            f"{NODE_NAME}: the latent batch has 1 image, which is the reference slot, so no slot is free for a target. "
            f"Batch the encoded reference with empty latents for the targets (LatentBatch, or EmptyLatentImage with "
            f"batch_size >= 2) and keep reference_index on the reference's slot."
        )
    if images < 2:
        raise StyleAlignedError(
            f"{NODE_NAME}: the latent batch has 1 image, so there is nothing to align to a reference. Use a latent "
            f"batch of at least 2 (the reference plus targets), e.g. EmptyLatentImage batch_size 4, or bypass the node."
        )
    if references is not None:
        return _several_references_layout(chunks, images, references)
    if not 0 <= reference_index < images:
        raise StyleAlignedError(
            f"{NODE_NAME}: reference_index is {reference_index} but the latent batch has {images} images "
            f"(valid slots 0..{images - 1}). Set reference_index to the slot of the style reference."
        )
    return BatchLayout(chunks=chunks, images_per_chunk=images, reference_index=reference_index)


def _several_references_layout(chunks: int, images: int, references: WeightedReferences) -> BatchLayout:
    outside = [slot for slot in references.slots if not 0 <= slot < images]
    if outside:
        raise StyleAlignedError(
            f"{REFERENCES_NODE}: slot {outside[0]} is outside the latent batch of {images} images (valid slots "
            f"0..{images - 1}). Set each reference's slot to an image of the batch that StyleAlignedPatch samples."
        )
    if len(references.slots) >= images:
        raise StyleAlignedError(
            f"{REFERENCES_NODE}: the latent batch has {images} images and all of them are references "
            f"(slots {', '.join(map(str, references.slots))}), so no image is left to align. Make the batch larger "
            f"than the number of references."
        )
    return BatchLayout(
        chunks=chunks, images_per_chunk=images, reference_index=references.slots[0],
        more_references=references.slots[1:], weights=references.weights,
    )
