"""A real image as the style reference: inversion, holding the reference slot, save/load, bad input."""

import os
import shutil
from pathlib import Path

import pytest
import torch

from host.comfy_env import host_node_class, load_host
from host.sampling import run_node, sample, seeded_noise, style_aligned
from host.tiny_clip import tiny_clip
from host.tiny_models import tiny_model

INVERSION_STEPS = 10
REFERENCE_TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def model(pack):
    return tiny_model("sd15")


@pytest.fixture(scope="module")
def clip(pack):
    return tiny_clip("sd15")


@pytest.fixture(scope="module")
def image_latent():
    # Stands in for VAEEncode of a real picture: smooth structure plus detail, at VAE-latent scale.
    generator = torch.Generator().manual_seed(21)
    coarse = torch.nn.functional.interpolate(torch.randn(1, 4, 2, 2, generator=generator), size=(8, 8), mode="bilinear")
    return coarse * 4 + torch.randn(1, 4, 8, 8, generator=generator)


@pytest.fixture(scope="module")
def reference(model, clip, image_latent):
    return run_node(
        "StyleAlignedInvertReference", model=model, clip=clip, latent={"samples": image_latent},
        prompt="a red toy", steps=INVERSION_STEPS, scheduler="normal",
    )[0]


def encode(clip, text):
    return host_node_class("CLIPTextEncode")().encode(clip, text)[0]


def batch_with_reference(image_latent, targets):
    return torch.cat([image_latent, torch.zeros(targets, *image_latent.shape[1:])])


def sample_from(model, latent, clip, sampler="euler", scheduler="normal", steps=INVERSION_STEPS, seed=0, noise=None):
    if noise is None:
        noise = seeded_noise(latent.shape[0], seed=seed, size=latent.shape[-1])
    load_host()
    import comfy.sample

    return comfy.sample.sample(
        model, noise, steps, 3.0, sampler, scheduler, encode(clip, "a toy"), encode(clip, ""), latent,
        seed=seed, disable_pbar=True,
    )


def test_reference_object_holds_latent_and_trajectory(reference, image_latent, model):
    assert torch.equal(reference.clean_latent, image_latent)
    assert reference.sigmas.shape == (INVERSION_STEPS,) and bool((reference.sigmas.diff() > 0).all())
    assert reference.noise.shape == (INVERSION_STEPS, 4, 8, 8) and reference.noise.isfinite().all()
    sigma_max = float(model.get_model_object("model_sampling").sigma_max)
    assert float(reference.sigmas[-1]) == pytest.approx(sigma_max, rel=1e-5)
    # The top of the trajectory is noise-like: roughly unit variance.
    assert 0.3 < float(reference.noise[-1].std()) < 3.0
    assert reference.metadata["model_family"] == "BaseModel/SD15/EPS" and reference.metadata["prompt"] == "a red toy"


@pytest.mark.parametrize("sampler", ["euler", "euler_ancestral", "heun", "dpmpp_2m"])
@pytest.mark.parametrize("scheduler", ["normal", "karras"])
@pytest.mark.parametrize("steps", [INVERSION_STEPS, 6])
def test_reference_slot_decodes_to_the_image(model, clip, reference, image_latent, sampler, scheduler, steps):
    latent = batch_with_reference(image_latent, 2)
    out = sample_from(style_aligned(model, reference=reference), latent, clip, sampler, scheduler, steps, seed=steps)
    assert (out[0] - image_latent[0]).abs().max().item() < REFERENCE_TOLERANCE
    plain = sample_from(model, latent, clip, sampler, scheduler, steps, seed=steps)
    assert (out[1:] - plain[1:]).abs().max().item() > 1e-2


def test_no_leakage_between_targets_with_image_reference(model, clip, reference, image_latent):
    patched = style_aligned(model, reference=reference)
    latent = batch_with_reference(image_latent, 3)
    noise = seeded_noise(4, seed=31)
    changed = noise.clone()
    changed[3] = seeded_noise(1, seed=32)[0]
    first = sample_from(patched, latent, clip, noise=noise)
    second = sample_from(patched, latent, clip, noise=changed)
    assert (first[3] - second[3]).abs().max() > 1e-2
    for untouched in (0, 1, 2):
        assert (first[untouched] - second[untouched]).abs().max() < 1e-4


def reconstruction_error(model, clip, image_latent, steps):
    """Invert, then re-sample the top latent with deterministic Euler (DDIM), no StyleAligned."""
    import comfy.k_diffusion.sampling as k_sampling
    import comfy.sample
    import comfy.samplers

    reference = run_node(
        "StyleAlignedInvertReference", model=model, clip=clip, latent={"samples": image_latent},
        prompt="a red toy", steps=steps, scheduler="normal",
    )[0]
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "normal", steps)
    top = model.model.process_latent_in(image_latent) + float(reference.sigmas[-1]) * reference.noise[-1:]

    def euler_from_top(model_k, x, sigmas, extra_args=None, callback=None, disable=None):
        return k_sampling.sample_euler(model_k, top.to(x), sigmas, extra_args=extra_args, disable=True)

    positive = encode(clip, "a red toy")
    rebuilt = comfy.sample.sample_custom(
        model, torch.zeros_like(image_latent), 1.0, comfy.samplers.KSAMPLER(euler_from_top), sigmas,
        positive, positive, image_latent, disable_pbar=True, seed=0,
    )
    return float((rebuilt - image_latent).norm() / image_latent.norm())


def test_inversion_then_deterministic_resampling_reconstructs(model, clip, image_latent):
    """The inversion's quality on the real host path. A random UNet's noise prediction is far rougher than
    a trained one's, so the error is large in absolute terms; it must fall as the steps grow (a scaling or
    latent-space mistake would leave a floor). tests/test_core_inversion.py holds the algorithm to a
    small error on smooth denoisers."""
    errors = {steps: reconstruction_error(model, clip, image_latent, steps) for steps in (10, 30, 100)}
    print("\nDDIM inversion + Euler re-sampling, tiny random SD1.5 UNet, relative L2 error by steps:", errors)
    assert errors[100] < errors[30] < errors[10]
    assert errors[100] < 0.6 * errors[10]


def test_save_then_load_round_trip(model, clip, reference, image_latent, tmp_path, pack):
    import folder_paths

    previous_output = folder_paths.get_output_directory()
    folder_paths.set_output_directory(str(tmp_path))
    try:
        pack.nodes.reference_file_nodes.register_reference_folder()
        output = host_node_class("StyleAlignedSaveReference").execute(reference=reference, filename_prefix="stylealign/house")
        saved = list((tmp_path / "stylealign").glob("house_*.safetensors"))
        assert len(saved) == 1 and "saved" in "".join(output.ui.as_dict()["text"])
        names = host_node_class("StyleAlignedLoadReference").define_schema().inputs[0].options
        assert saved[0].name in names
        loaded = run_node("StyleAlignedLoadReference", reference_name=saved[0].name)[0]
    finally:
        folder_paths.set_output_directory(previous_output)
    for name in ("clean_latent", "sigmas", "noise"):
        assert torch.equal(getattr(loaded, name), getattr(reference, name))
    assert loaded.metadata == reference.metadata
    latent = batch_with_reference(image_latent, 2)
    with_original = sample_from(style_aligned(model, reference=reference), latent, clip, seed=41)
    with_loaded = sample_from(style_aligned(model, reference=loaded), latent, clip, seed=41)
    assert torch.equal(with_original, with_loaded)


def test_loading_never_unpickles_and_rejects_foreign_files(tmp_path, pack, error_type):
    from safetensors.torch import save_file

    load_reference = pack.stylealign_core.load_reference
    foreign = tmp_path / "model.safetensors"
    save_file({"weight": torch.zeros(2, 2)}, str(foreign))
    with pytest.raises(error_type, match="not a StyleAligned reference"):
        load_reference(foreign)
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(os.urandom(256))
    with pytest.raises(error_type, match="cannot be read"):
        load_reference(corrupt)
    pickled = tmp_path / "pickled.safetensors"
    torch.save({"clean_latent": torch.zeros(1)}, pickled)
    with pytest.raises(error_type):
        load_reference(pickled)


def test_load_node_names_itself_and_the_input(tmp_path, pack, error_type):
    import folder_paths

    previous_output = folder_paths.get_output_directory()
    folder_paths.set_output_directory(str(tmp_path))
    try:
        pack.nodes.reference_file_nodes.register_reference_folder()
        (tmp_path / "stylealign").mkdir()
        (tmp_path / "stylealign" / "broken.safetensors").write_bytes(b"not safetensors at all")
        with pytest.raises(error_type) as error:
            run_node("StyleAlignedLoadReference", reference_name="broken.safetensors")
    finally:
        folder_paths.set_output_directory(previous_output)
    assert "StyleAlignedLoadReference" in str(error.value) and "reference_name" in str(error.value)


def test_reference_of_another_size(model, clip, reference, error_type):
    latent = torch.zeros(3, 4, 6, 6)
    with pytest.raises(error_type) as error:
        sample_from(style_aligned(model, reference=reference), latent, clip)
    assert "StyleAlignedPatch" in str(error.value) and "reference latent" in str(error.value) and "8x8" in str(error.value)


def test_reference_from_another_model_family(clip, reference, error_type):
    with pytest.raises(error_type) as error:
        style_aligned(tiny_model("sdxl"), reference=reference)
    message = str(error.value)
    assert "StyleAlignedPatch" in message and "reference" in message and "SD15" in message and "SDXL" in message


def test_batch_without_a_free_slot(model, clip, reference, image_latent, error_type):
    with pytest.raises(error_type) as error:
        sample_from(style_aligned(model, reference=reference), image_latent, clip)
    assert "no slot is free" in str(error.value)


def test_inverting_a_batch_or_a_patched_model_is_refused(model, clip, image_latent, error_type):
    with pytest.raises(error_type, match="one image at a time"):
        run_node("StyleAlignedInvertReference", model=model, clip=clip, latent={"samples": image_latent.repeat(2, 1, 1, 1)}, steps=3)
    with pytest.raises(error_type, match="before the patch"):
        run_node("StyleAlignedInvertReference", model=style_aligned(model), clip=clip, latent={"samples": image_latent}, steps=3)


def test_sdxl_reference_slot_decodes_to_the_image(pack, image_latent):
    """The same path on the SDXL layout (pooled text conditioning, SDXL latent format)."""
    model, clip = tiny_model("sdxl"), tiny_clip("sdxl")
    reference = run_node(
        "StyleAlignedInvertReference", model=model, clip=clip, latent={"samples": image_latent},
        prompt="a red toy", steps=6, scheduler="karras",
    )[0]
    assert reference.metadata["model_family"] == "SDXL/SDXL/EPS"
    latent = batch_with_reference(image_latent, 2)
    out = sample_from(style_aligned(model, reference=reference), latent, clip, "dpmpp_2m", "normal", 5, seed=3)
    assert (out[0] - image_latent[0]).abs().max().item() < REFERENCE_TOLERANCE
    plain = sample_from(model, latent, clip, "dpmpp_2m", "normal", 5, seed=3)
    assert (out[1:] - plain[1:]).abs().max().item() > 1e-2
