"""A set rendered in parts by several participants: each part's images behind its tag, and the set put back
together from the parts in whatever order they arrive.

Every part holds the reference (each of its batches samples it with the same noise), so the parts' references
must agree: one that does not was rendered with other settings (seed, steps, model, prompts...), which the
tags cannot tell. The set takes each image from the lowest part that holds it, the reference from part 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import StyleAlignedError
from .chunk_plan import SetChunks, plan_chunks
from .part_tag import PartTag, decode_tag, encode_tag

# Our choice, not the paper's: the mean |difference| per pixel (0..1) two participants' renderings of the
# reference may show. One server's batches agree within 1/255; other GPU models or drivers differ by a little
# more; another seed or prompt differs by tenths.
DEFAULT_REFERENCE_TOLERANCE = 0.02


def tagged_part(plan: SetChunks, part_images: torch.Tensor) -> torch.Tensor:
    """The part's images (plan.part_images, in set order) led by its tag: what a participant hands on."""
    count, height, width, channels = part_images.shape
    tag = PartTag(plan.set_size, plan.reference_index, plan.images_per_batch, plan.part_index, plan.part_count, count)
    return torch.cat([encode_tag(tag, height, width, channels).to(part_images), part_images], dim=0)


@dataclass(frozen=True)
class AssembledSet:
    images: torch.Tensor  # the whole set in set order, each image once
    report: str


def _read_parts(images: torch.Tensor, node_name: str, input_name: str) -> list[tuple[PartTag, torch.Tensor]]:
    parts, position, total = [], 0, int(images.shape[0])
    while position < total:
        tag = decode_tag(images[position])
        if tag is None:
            raise StyleAlignedError(
                f"{node_name}: image {position} of {input_name} is not a part tag where one was expected. On every "
                f"participant connect StyleAligned Gather Part of Set to Distributed Collector, and the collector's "
                f"images to this node (nothing else may join or change the images in between)."
            )
        end = position + 1 + tag.image_count
        if end > total:
            raise StyleAlignedError(
                f"{node_name}: {input_name} ends inside part {tag.part_index}: its tag announces {tag.image_count} "
                f"images, {total - position - 1} follow. A participant's images were cut short; run the set again."
            )
        parts.append((tag, images[position + 1:end]))
        position = end
    if not parts:
        raise StyleAlignedError(f"{node_name}: {input_name} holds no images.")
    return parts


def assemble_parts(images: torch.Tensor, reference_tolerance: float, node_name: str, input_name: str) -> AssembledSet:
    """The collected images of every participant (each part behind its tag, parts in any order) -> the set."""
    received = _read_parts(images, node_name, input_name)
    first = received[0][0]
    for tag, _ in received[1:]:
        if not tag.same_set(first):
            raise StyleAlignedError(
                f"{node_name}: the participants split different sets: part {first.part_index} is {first.settings()}; "
                f"part {tag.part_index} is {tag.settings()}. Run the same graph with the same settings everywhere; only "
                f"part_index may differ."
            )
    parts: dict[int, torch.Tensor] = {}
    for tag, part in received:
        if tag.part_index in parts:
            raise StyleAlignedError(
                f"{node_name}: part_index {tag.part_index} came from two participants. Give each participant its own "
                f"part_index (Distributed Value: default_value 0 for the master, worker_values 1, 2... for the workers)."
            )
        parts[tag.part_index] = part
    missing = sorted(set(range(first.part_count)) - set(parts))
    if missing:
        raise StyleAlignedError(
            f"{node_name}: part(s) {missing} of parts 0..{first.part_count - 1} are missing (received {sorted(parts)}), "
            f"so the set is incomplete and nothing was assembled. A worker that is down, disabled or timed out sends "
            f"nothing: check the workers and run again, or set part_count to the number of participants."
        )

    plans = {index: plan_chunks(first.set_size, first.reference_index, first.images_per_batch, node_name, index,
                                first.part_count) for index in parts}
    for index, part in parts.items():
        if int(part.shape[0]) != len(plans[index].part_images):
            raise StyleAlignedError(
                f"{node_name}: part {index} holds {part.shape[0]} images, its share of the set is "
                f"{len(plans[index].part_images)}. Use the same version of this node pack on every participant."
            )

    reference_of = {index: parts[index][plans[index].part_images.index(first.reference_index)] for index in parts}
    differences = {index: float((reference_of[index].float() - reference_of[0].float()).abs().mean())
                   for index in sorted(parts) if index != 0}
    for index, difference in differences.items():
        if difference > reference_tolerance:
            raise StyleAlignedError(
                f"{node_name}: part {index}'s reference differs from part 0's by {difference:.4f} on average (more "
                f"than reference_tolerance {reference_tolerance}): that participant rendered with other settings "
                f"(seed, sampler, steps, model, prompts or size). Give every participant the same graph; only "
                f"part_index may differ, and Distributed Seed must not drive the noise."
            )

    source: dict[int, tuple[int, int]] = {}
    for index in sorted(parts):
        for row, image_index in enumerate(plans[index].part_images):
            source.setdefault(image_index, (index, row))
    assembled = torch.cat([parts[index][row:row + 1] for index, row in
                           (source[image_index] for image_index in range(first.set_size))], dim=0)
    lines = [f"part {index}: images {', '.join(map(str, plans[index].part_images))}" for index in sorted(parts)]
    if differences:
        lines.append(f"references agree: largest mean |difference| to part 0's {max(differences.values()):.4f}")
    return AssembledSet(assembled, "\n".join(lines))
