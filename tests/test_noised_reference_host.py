"""A real image as the reference without inversion (method "noised"): the slot is held at every step on
noise_scaling(sigma, eps, x_0) with one seeded eps, on eps, v and flow models, on both routes."""

import pytest
import torch

from host.dit_oracle import max_diff
from host.comfy_env import host_node_class, load_host
from host.sampling import run_node, seeded_noise, style_aligned
from host.tiny_dit_models import dit_conditioning, dit_noise, tiny_dit
from host.tiny_models import tiny_conditioning, tiny_model

REFERENCE_TOLERANCE = 1e-3
STEPS = 6


def image_like(channels, seed=21):
    # Stands in for VAEEncode of a real picture: smooth structure plus detail.
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.nn.functional.interpolate(torch.randn(1, channels, 2, 2, generator=generator), size=(8, 8), mode="bilinear")
    return coarse * 2 + torch.randn(1, channels, 8, 8, generator=generator)


def noised(model, image_latent, seed=7):
    # clip=None: the noised method must never encode a prompt or run the model.
    return run_node(
        "StyleAlignedInvertReference", model=model, clip=None, latent={"samples": image_latent}, method="noised", noise_seed=seed,
    )[0]


def v_prediction(model):
    return host_node_class("ModelSamplingDiscrete")().patch(model, "v_prediction", False)[0]


MODELS = {
    "sd15-eps": lambda: tiny_model("sd15"),
    "sd15-v": lambda: v_prediction(tiny_model("sd15")),
    "flux": lambda: tiny_dit("flux"),
}


def setup(kind):
    model = MODELS[kind]()
    if kind == "flux":
        latent = image_like(16)
        return model, latent, dit_conditioning("flux", seed=1), dit_conditioning("flux", seed=2), lambda n, s: dit_noise("flux", n, seed=s)
    return model, image_like(4), tiny_conditioning("sd15", seed=1), tiny_conditioning("sd15", seed=2), lambda n, s: seeded_noise(n, seed=s)


def sample(model, noise, positive, negative, latent, sampler, cfg):
    load_host()
    import comfy.sample

    return comfy.sample.sample(model, noise, STEPS, cfg, sampler, "normal", positive, negative, latent, seed=0, disable_pbar=True)


@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("sampler", ["euler", "dpmpp_2m"])
def test_noised_slot_decodes_to_the_image(pack, kind, sampler):
    model, image_latent, positive, negative, make_noise = setup(kind)
    reference = noised(model, image_latent)
    latent = torch.cat([image_latent, torch.zeros(2, *image_latent.shape[1:])])
    noise = make_noise(3, 4)
    cfg = 1.0 if kind == "flux" else 3.0
    out = sample(style_aligned(model, reference=reference), noise, positive, negative, latent, sampler, cfg)
    assert out.isfinite().all()
    assert max_diff(out[0], image_latent[0]) < REFERENCE_TOLERANCE
    plain = sample(model, noise, positive, negative, latent, sampler, cfg)
    assert max_diff(plain[0], image_latent[0]) > 0.1  # the slot is the image because it is held
    assert max_diff(out[1:], plain[1:]) > 1e-2
    generated = sample(style_aligned(model), noise, positive, negative, latent, sampler, cfg)
    assert max_diff(out[1:], generated[1:]) > 1e-3


@pytest.mark.parametrize("kind", ["sd15-eps", "flux"])
def test_slot_input_is_the_image_noised_with_the_seeded_noise(pack, kind):
    """What the model sees in the slot at every call is noise_scaling(sigma, eps, x_0), eps from the seed."""
    from host.sampling import node_output  # noqa: F401  (host loaded)

    model, image_latent, positive, negative, make_noise = setup(kind)
    reference = noised(model, image_latent, seed=11)
    generator = torch.Generator().manual_seed(11)
    eps = torch.randn(image_latent.shape, generator=generator)
    assert torch.equal(reference.noise, eps) and reference.sigmas.numel() == 1
    assert reference.metadata["method"] == "noised" and reference.metadata["noise_seed"] == "11"
    model_sampling = model.get_model_object("model_sampling")
    clean = model.model.process_latent_in(image_latent)
    sigmas, inputs = [], []

    def record_sigma(apply_model, args):
        sigmas.append(args["timestep"][0].clone())
        return apply_model(args["input"], args["timestep"], **args["c"])

    patched = style_aligned(model, reference=reference).clone()
    patched.set_model_unet_function_wrapper(record_sigma)
    # What the diffusion model itself receives (after the pack's hold and the host's input scaling).
    hook = model.model.diffusion_model.register_forward_pre_hook(lambda module, args: inputs.append(args[0][0].clone()))
    try:
        latent = torch.cat([image_latent, torch.zeros(1, *image_latent.shape[1:])])
        sample(patched, make_noise(2, 3), positive, negative, latent, "euler", 1.0)
    finally:
        hook.remove()
    assert len(sigmas) == len(inputs) == STEPS
    for x, sigma in zip(inputs, sigmas):
        sigma = sigma.reshape(1)
        expected = model_sampling.calculate_input(sigma, model_sampling.noise_scaling(sigma, eps, clean))[0]
        assert max_diff(x, expected) < 1e-5


def test_noised_reference_takes_no_model_pass_and_seeds_differ(pack):
    model, image_latent, *_ = setup("sd15-eps")
    first, again, other = noised(model, image_latent, 1), noised(model, image_latent, 1), noised(model, image_latent, 2)
    assert torch.equal(first.noise, again.noise) and max_diff(first.noise, other.noise) > 0.5
    assert torch.equal(first.clean_latent, image_latent)
    assert first.metadata["model_family"] == "BaseModel/SD15/EPS"
    with pytest.raises(Exception, match="method"):
        run_node("StyleAlignedInvertReference", model=model, clip=None, latent={"samples": image_latent}, method="other")


def test_noised_reference_saves_and_loads(pack, tmp_path):
    import folder_paths

    model, image_latent, positive, negative, make_noise = setup("sd15-eps")
    reference = noised(model, image_latent, seed=5)
    previous_output = folder_paths.get_output_directory()
    folder_paths.set_output_directory(str(tmp_path))
    try:
        pack.nodes.reference_file_nodes.register_reference_folder()
        host_node_class("StyleAlignedSaveReference").execute(reference=reference, filename_prefix="stylealign/noised")
        saved = list((tmp_path / "stylealign").glob("noised_*.safetensors"))
        loaded = run_node("StyleAlignedLoadReference", reference_name=saved[0].name)[0]
    finally:
        folder_paths.set_output_directory(previous_output)
    assert torch.equal(loaded.noise, reference.noise) and torch.equal(loaded.sigmas, reference.sigmas)
    assert loaded.metadata == reference.metadata
    latent = torch.cat([image_latent, torch.zeros(2, *image_latent.shape[1:])])
    noise = make_noise(3, 9)
    with_original = sample(style_aligned(model, reference=reference), noise, positive, negative, latent, "euler", 3.0)
    with_loaded = sample(style_aligned(model, reference=loaded), noise, positive, negative, latent, "euler", 3.0)
    assert torch.equal(with_original, with_loaded)


def test_noised_reference_refused_on_another_family(pack, error_type):
    model, image_latent, *_ = setup("sd15-eps")
    reference = noised(model, image_latent)
    with pytest.raises(error_type) as error:
        style_aligned(tiny_dit("flux"), reference=reference)
    assert "StyleAlignedPatch" in str(error.value) and "BaseModel/SD15/EPS" in str(error.value)
