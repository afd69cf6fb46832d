"""StyleAlignedPatch on the real ComfyUI host: tiny random SD1.5- and SDXL-like UNets, real sampler."""

import pytest
import torch

from host.comfy_env import host_node_class
from host.sampling import sample, seeded_noise, split_chunk_wrapper, style_aligned
from host.tiny_models import tiny_conditioning, tiny_model

REFERENCE_TOLERANCE = 1e-3


@pytest.fixture(scope="module", params=["sd15", "sdxl"])
def kind(request, pack):
    return request.param


@pytest.fixture(scope="module")
def model(kind):
    return tiny_model(kind)


def conds(kind, batch=1):
    return tiny_conditioning(kind, batch=batch, seed=1), tiny_conditioning(kind, batch=batch, seed=2)


def max_diff(a, b):
    return (a - b).abs().max().item()


def test_reference_unchanged_targets_styled(model, kind):
    positive, negative = conds(kind)
    noise = seeded_noise(4)
    plain = sample(model, noise, positive, negative)
    aligned = sample(style_aligned(model), noise, positive, negative)
    assert aligned.isfinite().all()
    assert max_diff(aligned[0], plain[0]) < REFERENCE_TOLERANCE
    scale = plain.abs().mean().item()
    for target in range(1, 4):
        assert max_diff(aligned[target], plain[target]) > 0.05 * scale


def test_no_leakage_between_targets(model, kind):
    positive, negative = conds(kind)
    patched = style_aligned(model)
    noise = seeded_noise(4)
    changed = noise.clone()
    changed[2] = seeded_noise(1, seed=99)[0]
    first = sample(patched, noise, positive, negative)
    second = sample(patched, changed, positive, negative)
    assert max_diff(first[2], second[2]) > 0.1
    for untouched in (0, 1, 3):
        assert max_diff(first[untouched], second[untouched]) < 1e-4


def test_any_reference_index(model, kind):
    positive, negative = conds(kind)
    noise = seeded_noise(3, seed=3)
    plain = sample(model, noise, positive, negative)
    aligned = sample(style_aligned(model, reference_index=2), noise, positive, negative)
    assert max_diff(aligned[2], plain[2]) < REFERENCE_TOLERANCE
    assert min(max_diff(aligned[i], plain[i]) for i in (0, 1)) > 0.05 * plain.abs().mean().item()


def test_cfg_one_with_odd_batch(model, kind):
    positive, negative = conds(kind)
    noise = seeded_noise(3, seed=4)
    plain = sample(model, noise, positive, negative, cfg=1.0)
    aligned = sample(style_aligned(model), noise, positive, negative, cfg=1.0)
    assert max_diff(aligned[0], plain[0]) < REFERENCE_TOLERANCE
    assert max_diff(aligned[1:], plain[1:]) > 0.05 * plain.abs().mean().item()


def test_separate_cond_and_uncond_calls_give_same_images(model, kind):
    positive, negative = conds(kind)
    noise = seeded_noise(3, seed=5)
    batched = sample(style_aligned(model), noise, positive, negative)
    splitting = model.clone()
    calls = []
    splitting.set_model_unet_function_wrapper(split_chunk_wrapper(calls))
    split = sample(style_aligned(splitting), noise, positive, negative)
    assert calls and set(calls) == {1}
    # Same maths in a different batch grouping: equal up to float32 summation order (values reach ~1e2).
    assert max_diff(batched, split) < 1e-5 * batched.abs().max().item()


def test_per_image_conditioning_batch(model, kind):
    positive, negative = conds(kind, batch=3)
    noise = seeded_noise(3, seed=6)
    plain = sample(model, noise, positive, negative)
    aligned = sample(style_aligned(model), noise, positive, negative)
    assert max_diff(aligned[0], plain[0]) < REFERENCE_TOLERANCE


def test_loaded_model_is_untouched(model, kind):
    positive, negative = conds(kind)
    noise = seeded_noise(3, seed=7)
    before = sample(model, noise, positive, negative)
    options_before = repr(model.model_options)
    for strength in (1.0, 2.0):
        sample(style_aligned(model, reference_strength=strength, adain_values=True), noise, positive, negative)
    after = sample(model, noise, positive, negative)
    assert torch.equal(before, after)
    assert repr(model.model_options) == options_before


def test_reference_strength_changes_targets_only(model, kind):
    positive, negative = conds(kind)
    noise = seeded_noise(3, seed=8)
    paper = sample(style_aligned(model), noise, positive, negative)
    strong = sample(style_aligned(model, reference_strength=3.0), noise, positive, negative)
    assert max_diff(strong[0], paper[0]) < REFERENCE_TOLERANCE
    assert max_diff(strong[1:], paper[1:]) > 1e-2


def test_schedule_window_outside_sampling_is_unpatched(model, kind):
    positive, negative = conds(kind)
    noise = seeded_noise(3, seed=9)
    plain = sample(model, noise, positive, negative)
    # Active only in the first 1% of the schedule: no step of a 4-step run has a sigma that high... except
    # the first; so compare a window that is empty instead: start = end = 0.999 lies between steps.
    inactive = sample(style_aligned(model, start_percent=0.999, end_percent=0.999), noise, positive, negative)
    torch.testing.assert_close(inactive, plain, atol=1e-5, rtol=0)
    late = sample(style_aligned(model, start_percent=0.5), noise, positive, negative)
    full = sample(style_aligned(model), noise, positive, negative)
    assert max_diff(late[1:], full[1:]) > 1e-3 and max_diff(late[1:], plain[1:]) > 1e-3


@pytest.mark.parametrize("strength", [1.0, 2.0])
@pytest.mark.parametrize("hypertile_first", [True, False])
def test_composes_with_hypertile(pack, hypertile_first, strength):
    model = tiny_model("sd15")
    positive, negative = conds("sd15")
    hypertile = host_node_class("HyperTile")

    def tile(m):
        return hypertile.execute(m, tile_size=32, swap_size=1, max_depth=0, scale_depth=False)[0]

    patched = (
        style_aligned(tile(model), reference_strength=strength) if hypertile_first
        else tile(style_aligned(model, reference_strength=strength))
    )
    assert len(patched.model_options["transformer_options"]["patches"]["attn1_patch"]) == 2
    out = sample(patched, seeded_noise(3, seed=10), positive, negative)
    assert out.shape == (3, 4, 8, 8) and out.isfinite().all()
    plain = sample(tile(model), seeded_noise(3, seed=10), positive, negative)
    assert max_diff(out[1:], plain[1:]) > 1e-3


def test_float16_unet_with_one_token_maps_has_no_nan(pack):
    model = tiny_model("sd15", dtype=torch.float16)
    patched = style_aligned(model)
    diffusion_model = patched.model.diffusion_model
    transformer_options = dict(patched.model_options["transformer_options"], cond_or_uncond=[1, 0])
    # A 2x2 latent: the second level is a 1x1 map (one token), and a zero latent gives constant features.
    for latent in (torch.zeros(4, 4, 2, 2), torch.randn(4, 4, 2, 2)):
        out = diffusion_model(
            latent.half(), torch.full((4,), 999.0), context=torch.randn(4, 8, 32).half(),
            transformer_options=dict(transformer_options, sigmas=torch.full((4,), 14.0)),
        )
        assert out.dtype == torch.float16 and out.isfinite().all()


def test_layer_selection_through_the_node(model, kind):
    positive, negative = conds(kind)
    noise = seeded_noise(3, seed=12)
    plain = sample(model, noise, positive, negative)
    full = sample(style_aligned(model), noise, positive, negative)
    # No layer is selected: the patch leaves every layer alone, so nothing may change.
    none = sample(style_aligned(model, shared_layer_fraction=0.0), noise, positive, negative)
    torch.testing.assert_close(none, plain, atol=1e-5 * plain.abs().max().item(), rtol=0)
    only_output = sample(
        style_aligned(model, share_input_blocks=False, share_middle_block=False), noise, positive, negative
    )
    half = sample(style_aligned(model, shared_layer_fraction=0.5), noise, positive, negative)
    for partial in (only_output, half):
        assert max_diff(partial[0], plain[0]) < REFERENCE_TOLERANCE
        assert max_diff(partial[1:], plain[1:]) > 1e-3 and max_diff(partial[1:], full[1:]) > 1e-3
