"""Sets larger than one batch: the split and gather nodes around the stock KSampler on tiny models.

The claim: a set sampled in batches that each carry the reference gives the latents of the whole set sampled
in one batch (deterministic sampler), for a generated reference, a real-image reference and a reference in
another slot than 0, with per-image prompts (SDXL pooled outputs too) and per-image ControlNet hints.
"""

import pytest
import torch

from host.comfy_env import host_node_class
from host.sampling import node_output, run_node, style_aligned
from host.tiny_clip import tiny_clip
from host.tiny_models import SD15_TINY_UNET, _randomise, tiny_conditioning, tiny_model

LATENT_TOLERANCE = 1e-4
SEED = 7
STEPS = 3


@pytest.fixture(scope="module")
def model(pack):
    # float64: in float32 the host's kernels round differently for another batch size (measured ~1e-6 of the
    # latents' scale, which reaches ~400 with random weights, even without the patch); float64 leaves only
    # what the split itself could get wrong (noise, prompt or hint rows, reference slot).
    return tiny_model("sd15", dtype=torch.float64)


@pytest.fixture(scope="module")
def clip(pack):
    return tiny_clip("sd15")


def ksampler(model, positive, negative, latent, sampler="euler"):
    """The stock KSampler node (noise from the seed and the latent's batch_index)."""
    return host_node_class("KSampler")().sample(model, SEED, STEPS, 3.0, sampler, "normal", positive, negative, latent)[0]


def split(positive, negative, latent, reference_index, images_per_batch):
    return node_output("StyleAlignedSplitSet", positive=positive, negative=negative, latent=latent,
                       reference_index=reference_index, images_per_batch=images_per_batch)


def sample_in_chunks(model, positive, negative, latent, reference_index, images_per_batch, sampler="euler"):
    """What the executor does with the split node's list outputs: KSampler once per batch, then the gather."""
    positives, negatives, latents, plan = split(positive, negative, latent, reference_index, images_per_batch).result
    assert len(positives) == len(negatives) == len(latents) == len(plan.chunks)
    samples = [ksampler(model, p, n, l, sampler)["samples"] for p, n, l in zip(positives, negatives, latents)]
    gathered = host_node_class("StyleAlignedGatherSet").execute(images=samples, set_chunks=[plan]).result[0]
    return gathered, plan


def empty_latent(images):
    return {"samples": torch.zeros(images, 4, 8, 8)}


def assert_chunked_equals_one_batch(model, positive, negative, latent, reference_index, images_per_batch):
    one_batch = ksampler(model, positive, negative, latent)["samples"]
    chunked, plan = sample_in_chunks(model, positive, negative, latent, reference_index, images_per_batch)
    assert len(plan.chunks) > 1 and max(len(rows) for rows in plan.chunks) <= images_per_batch
    assert chunked.shape == one_batch.shape
    difference = float((chunked - one_batch).abs().max())
    assert difference <= LATENT_TOLERANCE, f"chunked differs from one batch by {difference}"
    return one_batch, chunked, plan


def test_generated_reference_chunked_equals_one_batch(model):
    patched = style_aligned(model, reference_index=0)
    positive = tiny_conditioning("sd15", batch=7, seed=3)
    one_batch, _, _ = assert_chunked_equals_one_batch(patched, positive, tiny_conditioning("sd15", seed=4), empty_latent(7), 0, 3)
    # The patch acts in every batch: without it the targets differ, the reference does not.
    unpatched, _ = sample_in_chunks(model, positive, tiny_conditioning("sd15", seed=4), empty_latent(7), 0, 3)
    assert torch.allclose(unpatched[0], one_batch[0], atol=LATENT_TOLERANCE)
    assert all(float((unpatched[i] - one_batch[i]).abs().max()) > 1e-2 for i in range(1, 7))


def test_reference_in_another_slot_chunked_equals_one_batch(model):
    # 6 images, reference in slot 2, 3 per batch: the last batch is filled up with a target sampled twice.
    patched = style_aligned(model, reference_index=2)
    positive = tiny_conditioning("sd15", batch=6, seed=5)
    _, _, plan = assert_chunked_equals_one_batch(patched, positive, tiny_conditioning("sd15", seed=6), empty_latent(6), 2, 3)
    assert plan.chunks == ((0, 1, 2), (3, 4, 2), (4, 5, 2))


def test_real_image_reference_chunked_equals_one_batch(model, clip):
    generator = torch.Generator().manual_seed(21)
    image_latent = torch.nn.functional.interpolate(torch.randn(1, 4, 2, 2, generator=generator), size=(8, 8)) * 4
    reference = run_node("StyleAlignedInvertReference", model=model, clip=clip, latent={"samples": image_latent},
                         prompt="a red toy", steps=STEPS, scheduler="normal")[0]
    patched = style_aligned(model, reference=reference)
    # As Latent Batch(encoded image, Empty Latent Image of 4) gives it: batch_index [0, 0, 1, 2, 3].
    latent = host_node_class("LatentBatch").execute(samples1={"samples": image_latent}, samples2=empty_latent(4))[0]
    assert latent["batch_index"] == [0, 0, 1, 2, 3]
    positive = tiny_conditioning("sd15", batch=5, seed=8)
    _, chunked, _ = assert_chunked_equals_one_batch(patched, positive, tiny_conditioning("sd15", seed=9), latent, 0, 3)
    assert torch.allclose(chunked[:1], image_latent, atol=1e-3), "the held slot does not come back as the image"
