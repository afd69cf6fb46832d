"""A set larger than one batch on the real server: the shipped large-set workflow (8 prompts, 3 images per
batch, so KSampler and VAE Decode run 4 times through the split node's list outputs) saves the same images
as the same graph sampling the whole set in one batch, and the patch acts in every batch.

Runs on the tiny SD1.5-layout checkpoint at 64×64 with 3 steps (host.api_workflows.adapt_for_tiny_models);
the shipped sampler (euler) is deterministic, which the equality needs.
"""

from __future__ import annotations

from test_server import PATCH, RUN_TIMEOUT, SIZE, adapted, images_of, max_abs_diff, the_only

from host.api_workflows import bypass

LARGE_SET = "stylealigned_sd15_large_set"
SPLIT = "StyleAlignedSplitSet"


def test_large_set_in_batches_equals_one_batch_and_is_style_aligned(comfy, object_info, unique_prefix):
    prompt = adapted(LARGE_SET, unique_prefix("batches"))
    split, save = the_only(prompt, SPLIT), the_only(prompt, "SaveImage")
    assert prompt[split]["inputs"]["images_per_batch"] == 3
    assert prompt[the_only(prompt, "KSampler")]["inputs"]["sampler_name"] == "euler"
    prompts = prompt[the_only(prompt, "StyleAlignedPromptBatch")]["inputs"]["prompts"].strip().splitlines()
    assert len(prompts) >= 7

    entry = comfy.run(prompt, timeout=RUN_TIMEOUT)
    in_batches = images_of(comfy, entry, save)
    assert len(in_batches) == len(prompts) and all(image.shape == (SIZE, SIZE, 3) for image in in_batches)
    # The split node reports its batches: the reference (image 0) in each, the targets two at a time.
    report = entry["outputs"][split]["text"][0].splitlines()
    assert report == ["batch 1: images 0 (reference), 1, 2", "batch 2: images 0 (reference), 3, 4",
                      "batch 3: images 0 (reference), 5, 6", "batch 4: images 0 (reference), 7"]

    one_batch_prompt = adapted(LARGE_SET, unique_prefix("one_batch"))
    one_batch_prompt[split]["inputs"]["images_per_batch"] = 0
    one_batch = images_of(comfy, comfy.run(one_batch_prompt, timeout=RUN_TIMEOUT), save)
    differences = [max_abs_diff(a, b) for a, b in zip(in_batches, one_batch)]
    print("\nmax |batches of 3 - one batch| per image (of 255):", differences)
    assert len(one_batch) == len(in_batches) and max(differences) <= 1, differences

    unpatched_prompt = bypass(adapted(LARGE_SET, unique_prefix("unpatched")), [the_only(prompt, PATCH)], object_info)
    unpatched = images_of(comfy, comfy.run(unpatched_prompt, timeout=RUN_TIMEOUT), save)
    assert max_abs_diff(unpatched[0], in_batches[0]) <= 1, "the reference changed"
    changed = [max_abs_diff(a, b) for a, b in zip(unpatched[1:], in_batches[1:])]
    assert all(difference > 1 for difference in changed), f"targets the patch left alone: {changed}"
