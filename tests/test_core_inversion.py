"""Inversion, trajectories, conditioning batches and reference files in the pure-torch core."""

import math

import pytest
import torch

from stylealign_core import (
    HeldReference,
    NoiseScaling,
    ReferenceTrajectory,
    StyleAlignedError,
    invert,
    load_reference,
    prompt_of_each_image,
    save_reference,
    common_token_length,
    stack_prompt_conditionings,
)

EPS_SCALING = NoiseScaling(lambda sigma, noise, latent: latent + noise * sigma.reshape(-1))
FLOW_SCALING = NoiseScaling(lambda sigma, noise, latent: (1 - sigma.reshape(-1)) * latent + noise * sigma.reshape(-1))


def karras_sigmas(steps, sigma_min=0.03, sigma_max=14.6, rho=7.0):
    ramp = torch.linspace(0, 1, steps)
    sigmas = (sigma_max ** (1 / rho) + ramp * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    return torch.cat([sigmas, torch.zeros(1)])


def flow_sigmas(steps):
    return torch.cat([torch.linspace(1.0, 0.02, steps), torch.zeros(1)])


def smooth_eps_denoiser(x, sigma):
    return x - sigma * torch.tanh(x / math.sqrt(1 + sigma * sigma))


def smooth_flow_denoiser(x, sigma):
    return x - sigma * torch.tanh(x)


def euler_sample(denoise, x, sigmas):
    for sigma, next_sigma in zip(sigmas[:-1].tolist(), sigmas[1:].tolist()):
        x = x + (x - denoise(x, sigma)) / sigma * (next_sigma - sigma)
    return x


@pytest.mark.parametrize(
    "scaling, denoise, schedule",
    [(EPS_SCALING, smooth_eps_denoiser, karras_sigmas), (FLOW_SCALING, smooth_flow_denoiser, flow_sigmas)],
    ids=["eps", "flow"],
)
def test_inversion_round_trip_converges(scaling, denoise, schedule):
    clean = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    errors = []
    for steps in (10, 30, 100):
        sigmas = schedule(steps)
        inverted_sigmas, noise = invert(denoise, clean, sigmas, scaling)
        assert inverted_sigmas.tolist() == sorted(sigmas[sigmas > 0].double().tolist())
        top = scaling.mix(float(inverted_sigmas[-1]), clean, noise[-1:])
        rebuilt = euler_sample(denoise, top, sigmas)
        errors.append(float((rebuilt - clean).norm() / clean.norm()))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.05


def test_trajectory_rebuilds_inverted_latents_and_interpolates():
    clean = torch.randn(1, 2, 3, 3)
    sigmas = torch.tensor([0.5, 1.0, 4.0], dtype=torch.float64)
    noise = torch.randn(3, 2, 3, 3)
    trajectory = ReferenceTrajectory(clean_latent=clean, sigmas=sigmas, noise=noise)
    assert torch.equal(trajectory.noise_at(1.0), noise[1])
    torch.testing.assert_close(trajectory.noise_at(2.5), 0.5 * noise[1] + 0.5 * noise[2])
    assert torch.equal(trajectory.noise_at(0.1), noise[0]) and torch.equal(trajectory.noise_at(99.0), noise[2])
    held = HeldReference(trajectory, clean * 2, EPS_SCALING)
    torch.testing.assert_close(held.input_at(4.0, clean), (clean * 2 + 4.0 * noise[2:3])[0])



def test_held_reference_holds_every_chunks_reference_rows_on_a_flow_model():
    """The hold both routes share: per-row sigmas, the reference slot of every chunk, nothing else."""
    from stylealign_core import BatchLayout

    clean = torch.randn(1, 2, 3, 3)
    sigmas = torch.tensor([0.25, 0.5, 1.0], dtype=torch.float64)
    noise = torch.randn(3, 2, 3, 3)
    held = HeldReference(ReferenceTrajectory(clean_latent=clean, sigmas=sigmas, noise=noise), clean, FLOW_SCALING)
    layout = BatchLayout(chunks=2, images_per_chunk=3, reference_index=1)
    x = torch.randn(6, 2, 3, 3)
    row_sigmas = torch.tensor([1.0, 1.0, 1.0, 0.5, 0.5, 0.5])
    x_before = x.clone()
    held_x = held.hold_input(x, row_sigmas, layout)
    assert torch.equal(x, x_before)  # the sampler's own tensor is not changed
    # Flow mixing written out: x = (1 - sigma) * clean + sigma * noise; sigma 1 is pure noise.
    torch.testing.assert_close(held_x[1], noise[2])
    torch.testing.assert_close(held_x[4], 0.5 * clean[0] + 0.5 * noise[1])
    assert torch.equal(held_x[[0, 2, 3, 5]], x[[0, 2, 3, 5]]) and not torch.equal(held_x, x)
    torch.testing.assert_close(held.hold_input(x, torch.tensor([0.5]), layout)[1], 0.5 * clean[0] + 0.5 * noise[1])
    output = torch.randn(6, 2, 3, 3)
    before = output.clone()
    held.hold_output(output, layout)
    assert torch.equal(output[1], clean[0]) and torch.equal(output[4], clean[0])
    assert torch.equal(output[[0, 2, 3, 5]], before[[0, 2, 3, 5]])
    with pytest.raises(StyleAlignedError, match="input reference"):
        held.hold_input(torch.randn(6, 2, 4, 4), row_sigmas, layout)


def test_held_reference_on_a_video_shaped_latent():
    """(1, C, T, H, W) latents (Qwen-Image, Wan): the same trajectory and hold, one time step here."""
    from stylealign_core import BatchLayout

    clean = torch.randn(1, 2, 1, 3, 3)
    noise = torch.randn(2, 2, 1, 3, 3)
    trajectory = ReferenceTrajectory(clean_latent=clean, sigmas=torch.tensor([0.5, 1.0], dtype=torch.float64), noise=noise)
    held = HeldReference(trajectory, clean, FLOW_SCALING)
    layout = BatchLayout(chunks=1, images_per_chunk=2, reference_index=0)
    held_x = held.hold_input(torch.randn(2, 2, 1, 3, 3), torch.tensor([0.5]), layout)
    torch.testing.assert_close(held_x[0], 0.5 * clean[0] + 0.5 * noise[0])
    output = held.hold_output(torch.randn(2, 2, 1, 3, 3), layout)
    assert torch.equal(output[0], clean[0])
    with pytest.raises(StyleAlignedError, match="2 channels at 1x3x3"):
        held.hold_input(torch.randn(2, 2, 3, 3), torch.tensor([0.5]), layout)

@pytest.mark.parametrize(
    "bad",
    [
        dict(sigmas=torch.tensor([1.0, 0.5], dtype=torch.float64)),
        dict(sigmas=torch.tensor([0.0, 0.5], dtype=torch.float64)),
        dict(noise=torch.randn(3, 2, 3, 3)),
        dict(clean_latent=torch.randn(2, 2, 3, 3)),
    ],
)
def test_trajectory_rejects_inconsistent_tensors(bad):
    values = dict(clean_latent=torch.randn(1, 2, 3, 3), sigmas=torch.tensor([0.5, 1.0], dtype=torch.float64), noise=torch.randn(2, 2, 3, 3))
    values.update(bad)
    with pytest.raises(ValueError):
        ReferenceTrajectory(**values)


def test_reference_file_round_trip(tmp_path):
    trajectory = ReferenceTrajectory(
        clean_latent=torch.randn(1, 4, 5, 6), sigmas=torch.tensor([0.1, 0.7, 3.0], dtype=torch.float64),
        noise=torch.randn(3, 4, 5, 6), metadata={"model_family": "BaseModel/SD15/EPS", "prompt": "a cat"},
    )
    path = tmp_path / "ref.safetensors"
    save_reference(trajectory, path)
    loaded = load_reference(path)
    for name in ("clean_latent", "sigmas", "noise"):
        assert torch.equal(getattr(loaded, name), getattr(trajectory, name))
    assert loaded.metadata == trajectory.metadata


def test_prompt_conditionings_stack_by_whole_repetition():
    short = torch.randn(1, 77, 8)
    long = torch.randn(1, 154, 8)
    cond, extras = stack_prompt_conditionings(
        [(short, {"pooled_output": torch.ones(1, 3)}), (long, {"pooled_output": torch.zeros(1, 3)})], "Node"
    )
    assert cond.shape == (2, 154, 8)
    assert torch.equal(cond[0, :77], short[0]) and torch.equal(cond[0, 77:], short[0]) and torch.equal(cond[1], long[0])
    assert torch.equal(extras["pooled_output"], torch.cat([torch.ones(1, 3), torch.zeros(1, 3)]))
    with pytest.raises(StyleAlignedError, match="pooled output for some prompts only"):
        stack_prompt_conditionings([(short, {"pooled_output": torch.ones(1, 3)}), (short, {"pooled_output": None})], "Node")


def test_per_token_extras_follow_their_tokens():
    """Z-Image's encoder gives an attention mask (1, T_i) per prompt: repeated like the tokens, then batched."""
    short, long = torch.randn(1, 2, 8), torch.randn(1, 3, 8)
    short_mask, long_mask = torch.tensor([[1, 0]]), torch.tensor([[1, 1, 0]])
    cond, extras = stack_prompt_conditionings(
        [(short, {"pooled_output": None, "attention_mask": short_mask}), (long, {"pooled_output": None, "attention_mask": long_mask})],
        "Node")
    assert cond.shape == (2, 6, 8) and extras["pooled_output"] is None
    assert extras["attention_mask"].tolist() == [[1, 0, 1, 0, 1, 0], [1, 1, 0, 1, 1, 0]]
    with pytest.raises(StyleAlignedError, match="'attention_mask' output differs"):  # not aligned with the tokens
        stack_prompt_conditionings([(short, {"attention_mask": torch.ones(1, 5)}), (long, {"attention_mask": torch.ones(1, 4)})], "Node")


def test_unpadded_prompts_of_unrelated_lengths_extend_cyclically_to_the_longest():
    """Qwen-Image / Z-Image encoders do not pad: 25 and 26 tokens would need 650 by whole repetition. Past the
    host's 4x limit every prompt is extended with its own tokens to the longest length instead."""
    assert common_token_length([77, 154]) == (154, True)
    assert common_token_length([2, 3]) == (6, True)
    assert common_token_length([25, 26]) == (26, False)
    short, long = torch.randn(1, 25, 8), torch.randn(1, 26, 8)
    short_mask, long_mask = torch.arange(25).reshape(1, 25), torch.arange(26).reshape(1, 26) + 100
    cond, extras = stack_prompt_conditionings(
        [(short, {"attention_mask": short_mask}), (long, {"attention_mask": long_mask})], "Node")
    assert cond.shape == (2, 26, 8)
    assert torch.equal(cond[0, :25], short[0]) and torch.equal(cond[0, 25], short[0, 0]) and torch.equal(cond[1], long[0])
    assert extras["attention_mask"][0].tolist() == list(range(25)) + [0]
    assert extras["attention_mask"][1].tolist() == list(range(100, 126))


def test_prompt_of_each_image_follows_the_host():
    assert prompt_of_each_image(3, 5) == [0, 1, 2, 0, 1]
    assert prompt_of_each_image(3, 2) == [0, 1]
