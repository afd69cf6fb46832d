"""stylealign_core.sets alone: a set shared by several participants (parts), their tags, and the assembly."""

import io
import itertools
import random

import numpy as np
import pytest
import torch
from PIL import Image

from stylealign_core import (
    PartTag, StyleAlignedError, assemble_parts, decode_tag, encode_tag, part_chunk_range, plan_chunks, tagged_part)

SPLIT = "StyleAlignedSplitSet"
ASSEMBLE = "StyleAlignedAssembleSet"
H, W = 8, 8


def as_8bit_png(images: torch.Tensor) -> torch.Tensor:
    """What a ComfyUI-Distributed worker's images become on the master: truncated to 8 bits, PNG, back to float."""
    out = []
    for image in images:
        png = io.BytesIO()
        Image.fromarray((255 * image.numpy()).astype(np.uint8)).save(png, format="PNG")
        out.append(torch.from_numpy(np.asarray(Image.open(io.BytesIO(png.getvalue()))).astype(np.float32) / 255.0))
    return torch.stack(out)


def the_set(set_size: int, seed: int = 0) -> torch.Tensor:
    """Distinct images, one per set index (what rendering the whole set in one batch gives)."""
    return torch.rand(set_size, H, W, 3, generator=torch.Generator().manual_seed(seed))


def render_part(plan, full_set: torch.Tensor) -> torch.Tensor:
    """A participant: its batches decoded (each row the image of its set index), gathered and tagged."""
    return tagged_part(plan, plan.gather([full_set[list(rows)] for rows in plan.part_chunks], "StyleAlignedGatherPart", "images"))


@pytest.mark.parametrize("chunk_count, part_count", [(c, p) for c in range(1, 13) for p in range(1, c + 1)])
def test_parts_take_contiguous_even_runs_of_whole_batches(chunk_count, part_count):
    runs = [part_chunk_range(chunk_count, index, part_count) for index in range(part_count)]
    assert [number for run in runs for number in run] == list(range(chunk_count))
    sizes = [len(run) for run in runs]
    assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1


def test_each_part_samples_the_reference_in_every_batch_and_the_parts_cover_the_set():
    for set_size, reference_index, images_per_batch in itertools.product(range(3, 14), range(0, 3), range(2, 6)):
        if reference_index >= set_size or images_per_batch <= reference_index:
            continue
        whole = plan_chunks(set_size, reference_index, images_per_batch, SPLIT)
        for part_count in range(1, len(whole.chunks) + 1):
            parts = [plan_chunks(set_size, reference_index, images_per_batch, SPLIT, index, part_count)
                     for index in range(part_count)]
            assert tuple(rows for part in parts for rows in part.part_chunks) == whole.chunks
            assert all(rows[reference_index] == reference_index for part in parts for rows in part.part_chunks)
            assert set().union(*(part.part_images for part in parts)) == set(range(set_size))
            assert all(reference_index in part.part_images for part in parts)


def test_one_part_is_todays_behaviour():
    plan = plan_chunks(8, 0, 3, SPLIT)
    assert (plan.part_index, plan.part_count) == (0, 1) and plan.part_chunks == plan.chunks
    assert plan.describe().splitlines()[0] == "batch 1: images 0 (reference), 1, 2"
    second = plan_chunks(8, 0, 3, SPLIT, 1, 2)
    assert second.part_chunks == ((0, 5, 6), (0, 7)) and second.part_images == (0, 5, 6, 7)
    assert second.describe().splitlines() == ["part 1 of parts 0..1: batches 3..4 of 4",
                                              "batch 3: images 0 (reference), 5, 6", "batch 4: images 0 (reference), 7"]


@pytest.mark.parametrize("part_index, part_count, words", [
    (0, 0, "part_count is 0"),
    (2, 2, "part_index is 2 but part_count is 2 (valid 0..1)"),
    (-1, 2, "part_index is -1"),
    (0, 5, "part_count (5) is more than the set's 4 batch(es)"),
])
def test_part_errors_name_node_and_input(part_index, part_count, words):
    with pytest.raises(StyleAlignedError) as error:
        plan_chunks(8, 0, 3, SPLIT, part_index, part_count)
    assert str(error.value).startswith(SPLIT) and words in str(error.value)


@pytest.mark.parametrize("convert", [lambda t: t, as_8bit_png, lambda t: torch.round(t * 255) / 255],
                         ids=["float", "8-bit truncated PNG", "8-bit rounded"])
def test_tag_survives_8bit_round_trips(convert):
    tag = PartTag(set_size=300, reference_index=7, images_per_batch=12, part_index=3, part_count=5, image_count=61)
    image = encode_tag(tag, H, W)
    assert image.shape == (1, H, W, 3) and 0 <= float(image.min()) and float(image.max()) <= 1
    assert decode_tag(convert(image)[0]) == tag


def test_pictures_and_damaged_tags_are_not_tags():
    assert decode_tag(the_set(1)[0]) is None
    assert decode_tag(torch.full((H, W, 3), 0.5)) is None
    tag = encode_tag(PartTag(8, 0, 3, 1, 2, 4), H, W)[0]
    damaged = tag.clone()
    damaged[0, 6] += 1 / 255  # one payload byte changed: the CRC no longer matches
    assert decode_tag(damaged) is None
    with pytest.raises(ValueError):
        encode_tag(PartTag(8, 0, 3, 1, 2, 4), 4, 4)  # too few pixels for the payload


@pytest.mark.parametrize("set_size, reference_index, images_per_batch, part_count", [
    (8, 0, 3, 2), (8, 0, 3, 3), (8, 0, 3, 4), (9, 2, 4, 2), (6, 2, 3, 3), (12, 1, 5, 2), (5, 0, 2, 4)])
def test_assembled_parts_equal_the_set_whatever_their_order(set_size, reference_index, images_per_batch, part_count):
    full_set = the_set(set_size, seed=set_size)
    parts = [render_part(plan_chunks(set_size, reference_index, images_per_batch, SPLIT, index, part_count), full_set)
             for index in range(part_count)]
    # The master's part stays float; the workers' arrive as 8-bit PNGs; arrival order is shuffled.
    arrived = [parts[0]] + [as_8bit_png(part) for part in parts[1:]]
    random.Random(set_size + part_count).shuffle(arrived)
    assembled = assemble_parts(torch.cat(arrived), 0.02, ASSEMBLE, "images")
    assert assembled.images.shape == full_set.shape
    # Each image within the 8-bit step of the set's own; the part 0 images (the reference included) exactly.
    assert float((assembled.images - full_set).abs().max()) <= 1 / 255 + 1e-6
    part0 = plan_chunks(set_size, reference_index, images_per_batch, SPLIT, 0, part_count).part_images
    assert torch.equal(assembled.images[list(part0)], full_set[list(part0)])
    assert assembled.report.splitlines()[:part_count] == [
        f"part {index}: images " + ", ".join(map(str, plan_chunks(set_size, reference_index, images_per_batch, SPLIT,
                                                                   index, part_count).part_images))
        for index in range(part_count)]


def test_one_part_assembles_to_the_set():
    full_set = the_set(5)
    assembled = assemble_parts(render_part(plan_chunks(5, 0, 3, SPLIT), full_set), 0.02, ASSEMBLE, "images")
    assert torch.equal(assembled.images, full_set)


def _parts(set_size=8, part_count=2, images_per_batch=3, seed=0):
    full_set = the_set(set_size, seed)
    return [render_part(plan_chunks(set_size, 0, images_per_batch, SPLIT, index, part_count), full_set)
            for index in range(part_count)]


def _refused(images: torch.Tensor, tolerance: float = 0.02) -> str:
    with pytest.raises(StyleAlignedError) as error:
        assemble_parts(images, tolerance, ASSEMBLE, "images")
    assert str(error.value).startswith(ASSEMBLE)
    return str(error.value)


def test_missing_part_is_refused():
    part0, _ = _parts()
    assert "part(s) [1] of parts 0..1 are missing (received [0])" in _refused(part0)


def test_duplicate_part_is_refused():
    part0, _ = _parts()
    assert "part_index 0 came from two participants" in _refused(torch.cat([part0, part0]))


def test_parts_of_other_settings_are_refused():
    part0, _ = _parts()
    _, other = _parts(images_per_batch=4)
    message = _refused(torch.cat([part0, other]))
    assert "split different sets" in message and "images_per_batch 3" in message and "images_per_batch 4" in message


def test_a_reference_rendered_differently_is_refused():
    part0, _ = _parts(seed=0)
    _, other_seed = _parts(seed=1)  # as from a participant with another seed: its reference differs
    message = _refused(torch.cat([part0, other_seed]))
    assert "part 1's reference differs from part 0's" in message and "Distributed Seed" in message
    assert assemble_parts(torch.cat([part0, other_seed]), 1.0, ASSEMBLE, "images").images.shape[0] == 8


def test_images_without_tags_or_cut_short_are_refused():
    part0, part1 = _parts()
    assert "image 0 of images is not a part tag" in _refused(the_set(8))
    assert "image 6 of images is not a part tag" in _refused(torch.cat([part0, part1[1:]]))
    assert "ends inside part 1: its tag announces 4 images, 2 follow" in _refused(torch.cat([part0, part1[:3]]))
