"""Which images of a set each chunk samples, and gathering the decoded chunks back into the set.

Every chunk holds the reference at slot `reference_index`, where StyleAlignedPatch looks for it, with the
targets in set order around it. A last chunk with fewer than `reference_index` targets would have no such
slot, so it is filled up with the targets just before it (sampled twice, kept once when gathering).
Several references (StyleAlignedReferences): every chunk holds every reference at its own slot (its index in
the set), the targets filling the other slots in set order; the last chunk is filled up alike so that it
reaches the highest reference slot.

A set shared by several participants (servers, GPUs) is split the same way on each of them; participant
`part_index` of `part_count` samples a contiguous run of whole chunks (runs differ by at most one chunk), so
every participant samples the reference in each of its chunks with the same noise as everyone else.
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
    chunks: tuple[tuple[int, ...], ...]  # per chunk: the set index of each of its rows, for the whole set
    images_per_batch: int = WHOLE_SET  # as asked (the chunks follow from it); a part's tag carries it
    part_index: int = 0
    part_count: int = 1
    # Several references: the slots of references 2..n (reference_index is reference 1's).
    more_references: tuple[int, ...] = ()

    @property
    def reference_slots(self) -> tuple[int, ...]:
        return (self.reference_index,) + self.more_references

    @property
    def part_chunk_numbers(self) -> range:
        """The chunks (0-based numbers into `chunks`) that this part samples."""
        return part_chunk_range(len(self.chunks), self.part_index, self.part_count)

    @property
    def part_chunks(self) -> tuple[tuple[int, ...], ...]:
        return tuple(self.chunks[number] for number in self.part_chunk_numbers)

    @property
    def part_images(self) -> tuple[int, ...]:
        """The set indices this part's chunks hold, each once, in set order (the reference included)."""
        return tuple(sorted({index for rows in self.part_chunks for index in rows}))

    def describe(self) -> str:
        lines = []
        numbers = self.part_chunk_numbers
        if self.part_count > 1:
            lines.append(f"part {self.part_index} of parts 0..{self.part_count - 1}: batches {numbers.start + 1}.."
                         f"{numbers.stop} of {len(self.chunks)}")
        for number in numbers:
            rows = self.chunks[number]
            names = [self._name(index) for index in rows]
            lines.append(f"batch {number + 1}: images {', '.join(names)}")
        return "\n".join(lines)

    def _name(self, index: int) -> str:
        slots = self.reference_slots
        if index not in slots:
            return str(index)
        return f"{index} (reference)" if len(slots) == 1 else f"{index} (reference {slots.index(index) + 1})"

    def gather(self, chunk_images: list[torch.Tensor], node_name: str, input_name: str) -> torch.Tensor:
        """This part's chunk outputs (one tensor per chunk, rows as planned) -> its images (`part_images`) in set
        order, each once; with one part, the whole set."""
        chunks = self.part_chunks
        sizes = [int(images.shape[0]) for images in chunk_images]
        expected = [len(rows) for rows in chunks]
        if sizes != expected:
            raise StyleAlignedError(
                f"{node_name}: {input_name} holds {len(sizes)} batches of {sizes} images, but the split gave "
                f"{len(expected)} batches of {expected}. Connect the images decoded from the sampler that got this "
                f"split's outputs, and the same split's set_chunks."
            )
        first_row: dict[int, tuple[int, int]] = {}
        for chunk, rows in enumerate(chunks):
            for row, index in enumerate(rows):
                first_row.setdefault(index, (chunk, row))
        shapes = {tuple(images.shape[1:]) for images in chunk_images}
        if len(shapes) != 1:
            raise StyleAlignedError(f"{node_name}: the batches of {input_name} differ in size ({sorted(shapes)}).")
        return torch.cat([chunk_images[chunk][row:row + 1] for chunk, row in
                          (first_row[index] for index in self.part_images)], dim=0)


def part_chunk_range(chunk_count: int, part_index: int, part_count: int) -> range:
    """Part `part_index` of `part_count` takes a contiguous run of whole chunks; the runs differ by one at most."""
    return range(part_index * chunk_count // part_count, (part_index + 1) * chunk_count // part_count)


def _check_part(chunk_count: int, part_index: int, part_count: int, node_name: str) -> None:
    if part_count < 1:
        raise StyleAlignedError(
            f"{node_name}: part_count is {part_count}; it is the number of participants sharing the set (1 = this "
            f"server renders the whole set)."
        )
    if not 0 <= part_index < part_count:
        raise StyleAlignedError(
            f"{node_name}: part_index is {part_index} but part_count is {part_count} (valid 0..{part_count - 1}). Give "
            f"each participant its own part_index (Distributed Value: 0 on the master, 1, 2... on the workers)."
        )
    if part_count > chunk_count:
        raise StyleAlignedError(
            f"{node_name}: part_count ({part_count}) is more than the set's {chunk_count} batch(es): each participant "
            f"renders whole batches. Lower part_count to at most {chunk_count}, or lower images_per_batch so the set "
            f"has more batches."
        )


def plan_chunks(set_size: int, reference_index: int, images_per_batch: int, node_name: str,
                part_index: int = 0, part_count: int = 1, more_references: tuple[int, ...] = ()) -> SetChunks:
    chunks = _chunks(set_size, (reference_index,) + tuple(more_references), images_per_batch, node_name)
    _check_part(len(chunks), part_index, part_count, node_name)
    return SetChunks(set_size, reference_index, chunks, images_per_batch, part_index, part_count, tuple(more_references))


def _chunks(set_size: int, slots: tuple[int, ...], images_per_batch: int, node_name: str) -> tuple[tuple[int, ...], ...]:
    """Every chunk: each reference at its slot, the targets in set order in the other slots."""
    _check_chunking(set_size, slots, images_per_batch, node_name)
    if images_per_batch == WHOLE_SET or images_per_batch >= set_size:
        return (tuple(range(set_size)),)
    targets = [index for index in range(set_size) if index not in slots]
    per_chunk = images_per_batch - len(slots)
    groups = [targets[start:start + per_chunk] for start in range(0, len(targets), per_chunk)]
    needed = max(slots) + 1 - len(slots)  # targets a chunk needs to reach the highest reference slot
    if len(groups[-1]) < needed:
        groups[-1] = targets[-needed:]
    chunks = []
    for group in groups:
        waiting = iter(group)
        chunks.append(tuple(slot if slot in slots else next(waiting) for slot in range(len(slots) + len(group))))
    return tuple(chunks)


def _check_chunking(set_size: int, slots: tuple[int, ...], images_per_batch: int, node_name: str) -> None:
    several, reference_index = len(slots) > 1, slots[0]
    if set_size < 2:
        raise StyleAlignedError(
            f"{node_name}: latent holds a set of {set_size} image; a set needs the reference and at least one target. "
            f"Use a latent batch of 2 or more (e.g. Empty Latent Image with batch_size from the prompt batch)."
        )
    outside = [slot for slot in slots if not 0 <= slot < set_size]
    if outside and several:
        raise StyleAlignedError(
            f"{node_name}: references lists slot {outside[0]} but the set has {set_size} images (valid 0..{set_size - 1}). "
            f"Set each reference's slot (StyleAlignedReferences, slot) to an image of the set."
        )
    if outside:
        raise StyleAlignedError(
            f"{node_name}: reference_index is {reference_index} but the set has {set_size} images (valid 0.."
            f"{set_size - 1}). Set it to the slot of the reference, the same as StyleAlignedPatch's reference_index."
        )
    if set_size <= len(slots):
        raise StyleAlignedError(
            f"{node_name}: every image of the set of {set_size} is a reference; add at least one target to the latent."
        )
    if images_per_batch == 1 or images_per_batch < 0:
        needs = (f"{len(slots) + 1} (the {len(slots)} references and one target)" if several
                 else "2 (the reference and one target). Use 2 or more")
        raise StyleAlignedError(
            f"{node_name}: images_per_batch is {images_per_batch}; every batch holds the reference, so it needs at "
            f"least {needs}, or 0 for the whole set in one batch."
        )
    if images_per_batch == WHOLE_SET or images_per_batch >= set_size:
        return
    if several and images_per_batch <= max(max(slots), len(slots)):
        raise StyleAlignedError(
            f"{node_name}: images_per_batch ({images_per_batch}) must be more than {max(max(slots), len(slots))}: every "
            f"batch holds the {len(slots)} references at their slots ({', '.join(map(str, slots))}), where "
            f"StyleAlignedPatch looks for them, and at least one target. Raise images_per_batch, or list the "
            f"references on earlier lines."
        )
    if images_per_batch <= reference_index:
        raise StyleAlignedError(
            f"{node_name}: images_per_batch ({images_per_batch}) must be more than reference_index "
            f"({reference_index}): every batch holds the reference at slot reference_index, where StyleAlignedPatch "
            f"looks for it. Raise images_per_batch above {reference_index}, or put the reference on an earlier line."
        )
