"""Where the reference sits in a model call's batch.

ComfyUI evaluates the latent batch of B images once per conditioning chunk (uncond, cond, area conds...)
and stacks the chunks: a call holds len(cond_or_uncond) * B rows, and the reference is slot r of every
chunk. Nothing here assumes two halves.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import StyleAlignedError

NODE_NAME = "StyleAlignedPatch"


@dataclass(frozen=True)
class BatchLayout:
    chunks: int
    images_per_chunk: int
    reference_index: int

    @property
    def rows(self) -> int:
        return self.chunks * self.images_per_chunk

    def reference_rows(self) -> list[int]:
        return [chunk * self.images_per_chunk + self.reference_index for chunk in range(self.chunks)]

    def target_rows(self) -> list[int]:
        reference = set(self.reference_rows())
        return [row for row in range(self.rows) if row not in reference]


def batch_layout(rows: int, cond_or_uncond, reference_index: int, real_reference: bool = False) -> BatchLayout:
    """Split `rows` model-call rows into chunks and check that the reference slot exists.

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
    if not 0 <= reference_index < images:
        raise StyleAlignedError(
            f"{NODE_NAME}: reference_index is {reference_index} but the latent batch has {images} images "
            f"(valid slots 0..{images - 1}). Set reference_index to the slot of the style reference."
        )
    return BatchLayout(chunks=chunks, images_per_chunk=images, reference_index=reference_index)
