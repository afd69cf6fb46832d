"""A real image as the style reference on transformer models (Flux, Chroma: flow models).

Tiny random models from the host's classes, the invert node with a stand-in T5 encoder (these encoders
cannot be built small), the host's real sampler. The reference slot is held on the image's inverted
trajectory by the transformer route's model call, with the same implementation as the UNet route.
"""

import pytest
import torch

from host.dit_oracle import max_diff
from host.comfy_env import host_node_class, load_host
from host.sampling import run_node, style_aligned
from host.tiny_dit_models import StandInT5Clip, dit_conditioning, dit_noise, tiny_dit

INVERSION_STEPS = 6
REFERENCE_TOLERANCE = 1e-3
FAMILIES = {"flux": "Flux/Flux/FLUX", "chroma": "Chroma/Flux/FLUX"}


@pytest.fixture(scope="module", params=["flux", "chroma"])
def kind(request, pack):
    return request.param


@pytest.fixture(scope="module")
def image_latent():
    # Stands in for VAEEncode of a real picture (16-channel latent): smooth structure plus detail.
    generator = torch.Generator().manual_seed(21)
    coarse = torch.nn.functional.interpolate(torch.randn(1, 16, 2, 2, generator=generator), size=(8, 8), mode="bilinear")
    return coarse + 0.5 * torch.randn(1, 16, 8, 8, generator=generator)


def invert(model, kind, image_latent, prompt="a red toy", steps=INVERSION_STEPS):
    return run_node(
        "StyleAlignedInvertReference", model=model, clip=StandInT5Clip(kind), latent={"samples": image_latent},
        prompt=prompt, steps=steps, scheduler="normal",
    )[0]


@pytest.fixture(scope="module")
def reference(model, kind, image_latent):
    return invert(model, kind, image_latent)


def batch_with_reference(image_latent, targets):
    return torch.cat([image_latent, torch.zeros(targets, *image_latent.shape[1:])])


def sample_from(model, kind, latent, sampler="euler", cfg=1.0, noise=None, seed=0, positive=None, steps=INVERSION_STEPS):
    load_host()
    import comfy.sample

    if noise is None:
        noise = dit_noise(kind, latent.shape[0], seed=seed, size=latent.shape[-1])
    positive = positive if positive is not None else dit_conditioning(kind, seed=1)
    return comfy.sample.sample(
        model, noise, steps, cfg, sampler, "normal", positive, dit_conditioning(kind, seed=2), latent,
        seed=seed, disable_pbar=True,
    )


def test_inversion_on_a_flow_model(model, kind, reference, image_latent):
    assert torch.equal(reference.clean_latent, image_latent)
    assert reference.metadata["model_family"] == FAMILIES[kind]
    assert reference.sigmas.shape == (INVERSION_STEPS,) and bool((reference.sigmas.diff() > 0).all())
    # A flow model's schedule tops out at sigma 1, where its latent is pure noise (a = 1 - sigma = 0).
    assert float(reference.sigmas[-1]) == pytest.approx(float(model.get_model_object("model_sampling").sigma_max), abs=1e-6)
    assert float(reference.sigmas[-1]) == pytest.approx(1.0, abs=1e-6)
    assert reference.noise.shape == (INVERSION_STEPS, 16, 8, 8) and reference.noise.isfinite().all()
    assert 0.3 < float(reference.noise[-1].std()) < 3.0
    # The prompt's conditioning reaches the model: another description gives another trajectory.
    other = invert(model, kind, image_latent, prompt="a blue car")
    assert max_diff(other.noise[-1], reference.noise[-1]) > 1e-3


@pytest.mark.parametrize("cfg", [1.0, 3.0])
@pytest.mark.parametrize("sampler", ["euler", "dpmpp_2m"])
def test_reference_slot_decodes_to_the_image(model, kind, reference, image_latent, sampler, cfg):
    latent = batch_with_reference(image_latent, 2)
    out = sample_from(style_aligned(model, reference=reference), kind, latent, sampler, cfg, seed=3)
    assert out.isfinite().all()
    assert max_diff(out[0], image_latent[0]) < REFERENCE_TOLERANCE
    plain = sample_from(model, kind, latent, sampler, cfg, seed=3)
    assert max_diff(plain[0], image_latent[0]) > 0.1  # the slot is the image because it is held
    assert max_diff(out[1:], plain[1:]) > 1e-2
    # The targets follow this image, not a generated reference in the same slot.
    generated = sample_from(style_aligned(model), kind, latent, sampler, cfg, seed=3)
    assert max_diff(out[1:], generated[1:]) > 1e-3


def test_no_leakage_between_targets_with_image_reference(model, kind, reference, image_latent):
    patched = style_aligned(model, reference=reference)
    latent = batch_with_reference(image_latent, 3)
    noise = dit_noise(kind, 4, seed=31)
    changed = noise.clone()
    changed[3] = dit_noise(kind, 1, seed=32)[0]
    first = sample_from(patched, kind, latent, noise=noise, cfg=3.0)
    second = sample_from(patched, kind, latent, noise=changed, cfg=3.0)
    assert max_diff(first[3], second[3]) > 1e-2
    for untouched in (0, 1, 2):
        assert max_diff(first[untouched], second[untouched]) < 1e-5


def test_flux_guidance_reaches_the_model_with_image_reference(pack, image_latent):
    model = tiny_dit("flux")
    reference = invert(model, "flux", image_latent)
    patched = style_aligned(model, reference=reference)
    guidance = host_node_class("FluxGuidance")
    latent = batch_with_reference(image_latent, 2)
    outs = [
        sample_from(patched, "flux", latent, positive=guidance.execute(dit_conditioning("flux", seed=1), value)[0], seed=5)
        for value in (1.0, 4.0)
    ]
    for out in outs:
        assert max_diff(out[0], image_latent[0]) < REFERENCE_TOLERANCE
    assert max_diff(outs[0][1:], outs[1][1:]) > 1e-3


def test_reference_of_another_size(model, kind, reference, error_type):
    with pytest.raises(error_type) as error:
        sample_from(style_aligned(model, reference=reference), kind, torch.zeros(3, 16, 6, 6))
    message = str(error.value)
    assert "StyleAlignedPatch" in message and "input reference" in message and "8x8" in message and "6x6" in message


def test_reference_from_another_model_family(reference, kind, error_type):
    other = "chroma" if kind == "flux" else "flux"
    with pytest.raises(error_type) as error:
        style_aligned(tiny_dit(other), reference=reference)
    message = str(error.value)
    assert "StyleAlignedPatch" in message and "reference" in message
    assert FAMILIES[kind] in message and FAMILIES[other] in message


def test_batch_without_a_free_slot(model, kind, reference, image_latent, error_type):
    with pytest.raises(error_type) as error:
        sample_from(style_aligned(model, reference=reference), kind, image_latent)
    assert "StyleAlignedPatch" in str(error.value) and "no slot is free" in str(error.value)


def test_flux2_reference_slot_decodes_to_the_image(pack):
    """Flux.2: 128-channel latent at patch 1, four RoPE axes; the same hold."""
    load_host()
    import comfy.sample

    model = tiny_dit("flux2")
    image_latent = dit_noise("flux2", 1, seed=23, size=4)
    reference = invert(model, "flux2", image_latent)
    assert reference.metadata["model_family"] == "Flux2/Flux2/FLUX"
    latent = batch_with_reference(image_latent, 2)
    noise = dit_noise("flux2", 3, seed=6, size=4)
    positive, negative = dit_conditioning("flux2", seed=1), dit_conditioning("flux2", seed=2)

    def run(patched):
        return comfy.sample.sample(patched, noise, 4, 1.0, "euler", "normal", positive, negative, latent, seed=0, disable_pbar=True)

    out, plain = run(style_aligned(model, reference=reference)), run(model)
    assert max_diff(out[0], image_latent[0]) < REFERENCE_TOLERANCE and max_diff(plain[0], image_latent[0]) > 0.1
    assert max_diff(out[1:], plain[1:]) > 1e-3


def test_inversion_takes_flux_guidance_through_the_conditioning_input(pack, image_latent, error_type):
    """Flux.1 dev: CLIPTextEncode -> FluxGuidance into the invert node's conditioning input reaches the
    model; without it the host's default guidance (3.5) is used."""
    model, clip = tiny_dit("flux"), StandInT5Clip("flux")
    encoded = host_node_class("CLIPTextEncode")().encode(clip, "a red toy")[0]
    guidance = host_node_class("FluxGuidance")

    def inverted_with(value):
        return run_node(
            "StyleAlignedInvertReference", model=model, clip=clip, latent={"samples": image_latent}, prompt="unused",
            steps=4, conditioning=guidance.execute(encoded, value)[0],
        )[0]

    default = invert(model, "flux", image_latent, steps=4)
    at_default, at_one = inverted_with(3.5), inverted_with(1.0)
    assert torch.equal(at_default.noise, default.noise)
    assert max_diff(at_one.noise, default.noise) > 1e-2
    assert at_one.metadata["prompt"] == "(the conditioning input)"
    with pytest.raises(error_type) as error:
        run_node(
            "StyleAlignedInvertReference", model=model, clip=clip, latent={"samples": image_latent}, steps=2,
            conditioning=dit_conditioning("flux", batch=2),
        )
    assert "StyleAlignedInvertReference" in str(error.value) and "conditioning input" in str(error.value)
