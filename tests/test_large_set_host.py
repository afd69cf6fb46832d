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


def tiny_controlnet(seed: int):
    """A ControlNet built like the tiny SD1.5 UNet (the host's cldm class, random weights), float64."""
    import comfy.cldm.cldm
    import comfy.controlnet
    import comfy.ops

    config = {key: value for key, value in SD15_TINY_UNET.items()
              if key not in ("out_channels", "transformer_depth_output", "use_temporal_attention", "use_temporal_resblock")}
    control_model = comfy.cldm.cldm.ControlNet(hint_channels=3, operations=comfy.ops.disable_weight_init, device="cpu",
                                               dtype=torch.float64, **config)
    _randomise(control_model, seed)
    return comfy.controlnet.ControlNet(control_model.to(torch.float64), load_device=torch.device("cpu"))


def test_controlnet_hint_per_image_chunked_equals_one_batch(model):
    """Two ControlNets chained (Apply ControlNet twice): one hint per image, then one hint for all."""
    apply = host_node_class("ControlNetApplyAdvanced")()
    per_image_hint = torch.rand(5, 64, 64, 3, generator=torch.Generator().manual_seed(2))
    positive, negative = apply.apply_controlnet(tiny_conditioning("sd15", batch=5, seed=3), tiny_conditioning("sd15", seed=4),
                                                tiny_controlnet(5), per_image_hint, 1.0, 0.0, 1.0)
    positive, negative = apply.apply_controlnet(positive, negative, tiny_controlnet(6), per_image_hint[:1], 0.5, 0.0, 1.0)
    user_control = positive[0][1]["control"]
    user_chain = (user_control, user_control.previous_controlnet, user_control.previous_controlnet.cond_hint_original)
    patched = style_aligned(model)
    one_batch, _, _ = assert_chunked_equals_one_batch(patched, positive, negative, empty_latent(5), 0, 2)
    # The user's control objects are untouched (the chain, the hint batch of 5).
    assert positive[0][1]["control"] is user_chain[0] and user_chain[0].previous_controlnet is user_chain[1]
    assert user_chain[1].cond_hint_original is user_chain[2] and user_chain[2].shape[0] == 5
    # The hints act on the set (so the equality above covers the hint rows).
    free = ksampler(patched, tiny_conditioning("sd15", batch=5, seed=3), tiny_conditioning("sd15", seed=4), empty_latent(5))
    assert float((free["samples"] - one_batch).abs().max()) > 1.0


@pytest.mark.parametrize("kind", ["sd15", "sdxl"])
def test_each_batch_gets_the_prompts_of_its_images(pack, kind):
    clip = tiny_clip(kind)
    lines = [f"a toy number {i}" for i in range(7)]
    conditioning = run_node("StyleAlignedPromptBatch", clip=clip, prompts="\n".join(lines), style="origami")[0]
    negative = host_node_class("CLIPTextEncode")().encode(clip, "blurry")[0]
    output = split(conditioning, negative, empty_latent(7), 1, 3)
    positives, negatives, latents, plan = output.result
    assert plan.chunks == ((0, 1, 2), (3, 1, 4), (5, 1, 6))
    assert "batch 2: images 3, 1 (reference), 4" in "".join(output.ui.as_dict()["text"])
    (cond, extras), = conditioning
    for rows, chunk, chunk_negative, latent in zip(plan.chunks, positives, negatives, latents):
        (chunk_cond, chunk_extras), = chunk
        for row, image in enumerate(rows):
            assert torch.equal(chunk_cond[row], cond[image])
            if kind == "sdxl":
                assert torch.equal(chunk_extras["pooled_output"][row], extras["pooled_output"][image])
        assert torch.equal(chunk_negative[0][0], negative[0][0]) and latent["batch_index"] == list(rows)


def test_sdxl_pooled_prompts_chunked_equals_one_batch(pack):
    model = tiny_model("sdxl", dtype=torch.float64)
    positive = tiny_conditioning("sdxl", batch=5, seed=3)
    assert_chunked_equals_one_batch(style_aligned(model), positive, tiny_conditioning("sdxl", seed=4), empty_latent(5), 0, 2)


@pytest.mark.parametrize("inputs, words", [
    ({"images_per_batch": 1}, "StyleAlignedSplitSet: images_per_batch is 1"),
    ({"latent": {"samples": torch.zeros(1, 4, 8, 8)}}, "StyleAlignedSplitSet: latent holds a set of 1 image"),
    ({"positive": tiny_conditioning("sd15", batch=3)}, "StyleAlignedSplitSet: positive has a prompt batch of 3 for a set of 5"),
    ({"reference_index": 4, "images_per_batch": 3}, "StyleAlignedSplitSet: images_per_batch (3) must be more than reference_index (4)"),
])
def test_split_errors_name_node_and_input(pack, error_type, inputs, words):
    values = {"positive": tiny_conditioning("sd15", batch=5), "negative": tiny_conditioning("sd15"),
              "latent": empty_latent(5), "reference_index": 0, "images_per_batch": 3, **inputs}
    with pytest.raises(error_type) as error:
        node_output("StyleAlignedSplitSet", **values)
    assert words in str(error.value)


def test_gather_errors_name_node_and_input(pack, error_type):
    plan = split(tiny_conditioning("sd15", batch=5), tiny_conditioning("sd15"), empty_latent(5), 0, 3).result[3]
    with pytest.raises(error_type, match="StyleAlignedGatherSet: images holds 1 batches of \\[5\\]"):
        host_node_class("StyleAlignedGatherSet").execute(images=[torch.zeros(5, 64, 64, 3)], set_chunks=[plan])


def as_images(samples: torch.Tensor) -> torch.Tensor:
    """A stand-in decoder: latents (B, 4, 8, 8) -> images (B, 8, 8, 3) in [0, 1], one-to-one per row."""
    return torch.sigmoid(samples[:, :3] / 50).permute(0, 2, 3, 1).float()


def render_part(model, positive, negative, latent, part_index, part_count):
    """One participant: its batches from the split, sampled, 'decoded', gathered behind its tag."""
    positives, negatives, latents, plan = node_output(
        "StyleAlignedSplitSet", positive=positive, negative=negative, latent=latent, reference_index=0,
        images_per_batch=3, part_index=part_index, part_count=part_count).result
    assert len(positives) == len(plan.part_chunks) and (plan.part_index, plan.part_count) == (part_index, part_count)
    images = [as_images(ksampler(model, p, n, l)["samples"]) for p, n, l in zip(positives, negatives, latents)]
    return host_node_class("StyleAlignedGatherPart").execute(images=images, set_chunks=[plan]).result[0], plan


@pytest.mark.parametrize("part_count", [2, 3])
def test_set_rendered_in_parts_equals_one_batch(model, part_count):
    """Parts sampled by separate participants, the workers' arriving as 8-bit images in reverse order,
    assemble to the one-batch set: the master's part exactly, the workers' within the 8-bit step."""
    patched = style_aligned(model, reference_index=0)
    positive, negative, latent = tiny_conditioning("sd15", batch=8, seed=3), tiny_conditioning("sd15", seed=4), empty_latent(8)
    one_batch = as_images(ksampler(patched, positive, negative, latent)["samples"])
    parts, plans = zip(*(render_part(patched, positive, negative, latent, index, part_count) for index in range(part_count)))
    arrived = [torch.floor(part * 255) / 255 for part in reversed(parts[1:])] + [parts[0]]
    output = host_node_class("StyleAlignedAssembleSet").execute(images=torch.cat(arrived))
    assembled = output.result[0]
    assert assembled.shape == one_batch.shape
    assert float((assembled - one_batch).abs().max()) <= 1 / 255 + 1e-4
    master_images = list(plans[0].part_images)
    assert sorted(set().union(*(plan.part_images for plan in plans))) == list(range(8))
    assert float((assembled[master_images] - one_batch[master_images]).abs().max()) <= 1e-4
    assert output.ui.as_dict()["text"][0].startswith("part 0: images 0, 1, 2")


def test_part_errors_name_the_node(pack, error_type):
    positive, negative, latent = tiny_conditioning("sd15", batch=8), tiny_conditioning("sd15"), empty_latent(8)
    with pytest.raises(error_type, match="StyleAlignedSplitSet: part_index is 2 but part_count is 2"):
        node_output("StyleAlignedSplitSet", positive=positive, negative=negative, latent=latent, reference_index=0,
                    images_per_batch=3, part_index=2, part_count=2)
    plan = node_output("StyleAlignedSplitSet", positive=positive, negative=negative, latent=latent, reference_index=0,
                       images_per_batch=3, part_index=0, part_count=2).result[3]
    with pytest.raises(error_type, match="StyleAlignedGatherSet: the split renders part 0 of 2 parts"):
        host_node_class("StyleAlignedGatherSet").execute(images=[torch.zeros(3, 8, 8, 3)] * 2, set_chunks=[plan])
    part = host_node_class("StyleAlignedGatherPart").execute(images=[torch.rand(3, 8, 8, 3)] * 2, set_chunks=[plan]).result[0]
    assert part.shape == (6, 8, 8, 3)  # the tag and images 0..4
    with pytest.raises(error_type, match="StyleAlignedAssembleSet: part\\(s\\) \\[1\\] of parts 0..1 are missing"):
        host_node_class("StyleAlignedAssembleSet").execute(images=part)
