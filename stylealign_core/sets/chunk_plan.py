"""Which images of a set each chunk samples, and gathering the decoded chunks back into the set.

Every chunk holds the reference at slot `reference_index`, where StyleAlignedPatch looks for it, with the
targets in set order around it. A last chunk with fewer than `reference_index` targets would have no such
slot, so it is filled up with the targets just before it (sampled twice, kept once when gathering).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import StyleAlignedError

WHOLE_SET = 0  # images_per_batch value: the whole set in one batch


@dataclass(frozen=True)
class SetChunks:
    set_size: int
    reference_index: int
    chunks: tuple[tuple[int, ...], ...]  # per chunk: the set index of each of its rows

    def describe(self) -> str:
        lines = []
        for number, rows in enumerate(self.chunks, start=1):
            names = [f"{index} (reference)" if index == self.reference_index else str(index) for index in rows]
            lines.append(f"batch {number}: images {', '.join(names)}")
        return "\n".join(lines)

    def gather(self, chunk_images: list[torch.Tensor], node_name: str, input_name: str) -> torch.Tensor:
        """The chunks' outputs (one tensor per chunk, rows as planned) -> the set in set order, each image once."""
        sizes = [int(images.shape[0]) for images in chunk_images]
        expected = [len(rows) for rows in self.chunks]
        if sizes != expected:
            raise StyleAlignedError(
                f"{node_name}: {input_name} holds {len(sizes)} batches of {sizes} images, but the set was split into "
                f"{len(expected)} batches of {expected}. Connect the images decoded from the sampler that got this "
                f"split's outputs, and the same split's set_chunks."
            )
        first_row: dict[int, tuple[int, int]] = {}
        for chunk, rows in enumerate(self.chunks):
            for row, index in enumerate(rows):
                first_row.setdefault(index, (chunk, row))
        shapes = {tuple(images.shape[1:]) for images in chunk_images}
        if len(shapes) != 1:
            raise StyleAlignedError(f"{node_name}: the batches of {input_name} differ in size ({sorted(shapes)}).")
        return torch.cat([chunk_images[chunk][row:row + 1] for chunk, row in
                          (first_row[index] for index in range(self.set_size))], dim=0)


def plan_chunks(set_size: int, reference_index: int, images_per_batch: int, node_name: str) -> SetChunks:
    if set_size < 2:
        raise StyleAlignedError(
            f"{node_name}: latent holds a set of {set_size} image; a set needs the reference and at least one target. "
            f"Use a latent batch of 2 or more (e.g. Empty Latent Image with batch_size from the prompt batch)."
        )
    if not 0 <= reference_index < set_size:
        raise StyleAlignedError(
            f"{node_name}: reference_index is {reference_index} but the set has {set_size} images (valid 0.."
            f"{set_size - 1}). Set it to the slot of the reference, the same as StyleAlignedPatch's reference_index."
        )
    if images_per_batch == 1 or images_per_batch < 0:
        raise StyleAlignedError(
            f"{node_name}: images_per_batch is {images_per_batch}; every batch holds the reference, so it needs at "
            f"least 2 (the reference and one target). Use 2 or more, or 0 for the whole set in one batch."
        )
    if images_per_batch == WHOLE_SET or images_per_batch >= set_size:
        return SetChunks(set_size, reference_index, (tuple(range(set_size)),))
    if images_per_batch <= reference_index:
        raise StyleAlignedError(
            f"{node_name}: images_per_batch ({images_per_batch}) must be more than reference_index "
            f"({reference_index}): every batch holds the reference at slot reference_index, where StyleAlignedPatch "
            f"looks for it. Raise images_per_batch above {reference_index}, or put the reference on an earlier line."
        )
    targets = [index for index in range(set_size) if index != reference_index]
    per_chunk = images_per_batch - 1
    groups = [targets[start:start + per_chunk] for start in range(0, len(targets), per_chunk)]
    if len(groups[-1]) < reference_index:
        groups[-1] = targets[-reference_index:]
    chunks = tuple(tuple(group[:reference_index]) + (reference_index,) + tuple(group[reference_index:]) for group in groups)
    return SetChunks(set_size, reference_index, chunks)
