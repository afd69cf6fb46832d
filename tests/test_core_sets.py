"""stylealign_core.sets alone: the chunk plan, gathering, and each chunk's share of latent and conditioning."""

import itertools

import pytest
import torch

from stylealign_core import ConditioningRows, StyleAlignedError, latent_rows, plan_chunks

NODE = "StyleAlignedSplitSet"


@pytest.mark.parametrize("set_size, reference_index, images_per_batch",
                         [(n, r, k) for n, r, k in itertools.product(range(2, 12), range(0, 6), range(2, 8)) if r < n and (k > r or k >= n)])
def test_every_image_in_a_batch_with_the_reference_at_its_slot(set_size, reference_index, images_per_batch):
    plan = plan_chunks(set_size, reference_index, images_per_batch, NODE)
    covered = set()
    for rows in plan.chunks:
        assert 2 <= len(rows) <= images_per_batch
        assert rows[reference_index] == reference_index, "the reference is not where the patch looks for it"
        assert rows.count(reference_index) == 1 and len(set(rows)) == len(rows)
        targets = [index for index in rows if index != reference_index]
        assert targets == sorted(targets)
        covered.update(rows)
    assert covered == set(range(set_size))
    # Only the batch that makes room for the reference's slot samples images twice, at most reference_index.
    sampled = sum(len(rows) - 1 for rows in plan.chunks)
    assert sampled - (set_size - 1) <= reference_index
    # As few batches as the size allows.
    assert len(plan.chunks) == -(-(set_size - 1) // (images_per_batch - 1))


def test_whole_set_in_one_batch():
    for images_per_batch in (0, 7, 100):
        assert plan_chunks(7, 3, images_per_batch, NODE).chunks == (tuple(range(7)),)


def test_gather_takes_each_image_once_in_set_order():
    plan = plan_chunks(6, 2, 3, NODE)
    assert plan.chunks == ((0, 1, 2), (3, 4, 2), (4, 5, 2))
    # Each decoded row labelled by (batch, row), as images (B, H, W, C).
    decoded = [torch.tensor([[10.0 * batch + row] for row in range(len(rows))]).view(-1, 1, 1, 1).expand(-1, 2, 2, 3)
               for batch, rows in enumerate(plan.chunks)]
    gathered = plan.gather(decoded, "StyleAlignedGatherSet", "images")
    assert gathered.shape == (6, 2, 2, 3)
    assert gathered[:, 0, 0, 0].tolist() == [0.0, 1.0, 2.0, 10.0, 11.0, 21.0]


def test_gather_refuses_batches_of_another_split():
    plan = plan_chunks(5, 0, 3, NODE)
    with pytest.raises(StyleAlignedError, match="StyleAlignedGatherSet: images holds 2 batches of \\[3, 2\\]"):
        plan.gather([torch.zeros(3, 2, 2, 3), torch.zeros(2, 2, 2, 3)], "StyleAlignedGatherSet", "images")


@pytest.mark.parametrize("set_size, reference_index, images_per_batch, words", [
    (1, 0, 0, "latent holds a set of 1 image"),
    (5, 0, 1, "images_per_batch is 1"),
    (5, 0, -2, "images_per_batch is -2"),
    (8, 3, 3, "images_per_batch (3) must be more than reference_index (3)"),
    (4, 4, 2, "reference_index is 4 but the set has 4 images"),
])
def test_errors_name_node_and_input(set_size, reference_index, images_per_batch, words):
    with pytest.raises(StyleAlignedError) as error:
        plan_chunks(set_size, reference_index, images_per_batch, NODE)
    assert str(error.value).startswith(NODE) and words in str(error.value)


def test_latent_rows_keep_each_images_noise_index_and_mask():
    samples = torch.arange(5.0).view(5, 1, 1, 1).expand(5, 4, 2, 2)
    chunk = latent_rows({"samples": samples, "noise_mask": torch.arange(5.0).view(5, 1, 1), "other": "kept"}, [0, 3, 4])
    assert chunk["samples"][:, 0, 0, 0].tolist() == [0.0, 3.0, 4.0]
    assert chunk["batch_index"] == [0, 3, 4] and chunk["other"] == "kept"
    assert chunk["noise_mask"][:, 0, 0].tolist() == [0.0, 3.0, 4.0]
    # A latent that already has noise indices (Latent Batch of an encoded image and empty latents) keeps them.
    held = latent_rows({"samples": samples, "batch_index": [0, 0, 1, 2, 3]}, [0, 3, 4])
    assert held["batch_index"] == [0, 2, 3]
    one_mask = torch.ones(1, 2, 2)
    assert latent_rows({"samples": samples, "noise_mask": one_mask}, [0, 1])["noise_mask"] is one_mask


class FakeControl:
    """Stands in for the host's control objects: copy() keeps the hint, drops the chain (as ControlNet.copy)."""

    def __init__(self, hint, previous=None):
        self.cond_hint_original = hint
        self.previous_controlnet = previous
        self.extra_concat_orig = []

    def copy(self):
        return FakeControl(self.cond_hint_original)


def test_conditioning_rows_cut_per_image_entries_and_copy_the_control_chain():
    hint = torch.arange(4.0).view(4, 1, 1, 1)
    shared_hint = torch.full((1, 1, 1, 1), 9.0)
    first = FakeControl(shared_hint)
    second = FakeControl(hint, previous=first)
    positive = [[torch.arange(4.0).view(4, 1, 1), {"pooled_output": torch.arange(4.0).view(4, 1), "mask": torch.arange(4.0).view(4, 1, 1),
                                                    "control": second, "width": 64}]]
    negative = [[torch.zeros(1, 1, 1), {"control": second}]]
    rows = ConditioningRows(4, [0, 2], NODE)
    (cond, extras), = rows.conditioning(positive, "positive")
    (negative_cond, negative_extras), = rows.conditioning(negative, "negative")
    assert cond.flatten().tolist() == [0.0, 2.0]
    assert extras["pooled_output"].flatten().tolist() == [0.0, 2.0] and extras["mask"].flatten().tolist() == [0.0, 2.0]
    assert extras["width"] == 64 and negative_cond.shape == (1, 1, 1)
    control = extras["control"]
    assert control is not second and control.cond_hint_original.flatten().tolist() == [0.0, 2.0]
    assert control.previous_controlnet is not first and torch.equal(control.previous_controlnet.cond_hint_original, shared_hint)
    assert negative_extras["control"] is control, "positive and negative no longer share one control object"
    # Nothing of the user's conditioning changed.
    assert second.cond_hint_original is hint and second.previous_controlnet is first and first.previous_controlnet is None
    assert positive[0][1]["control"] is second and positive[0][0].shape[0] == 4


@pytest.mark.parametrize("what, conditioning, words", [
    ("prompts", [[torch.zeros(3, 1, 1), {}]], "positive has a prompt batch of 3 for a set of 4 images"),
    ("pooled", [[torch.zeros(4, 1, 1), {"pooled_output": torch.zeros(2, 1)}]], "positive has a pooled output batch of 2"),
    ("hints", [[torch.zeros(1, 1, 1), {"control": FakeControl(torch.zeros(3, 1, 1, 1))}]], "positive has a ControlNet hint batch of 3"),
])
def test_mismatched_sizes_name_node_and_input(what, conditioning, words):
    with pytest.raises(StyleAlignedError) as error:
        ConditioningRows(4, [0, 1], NODE).conditioning(conditioning, "positive")
    assert str(error.value).startswith(NODE) and words in str(error.value)
