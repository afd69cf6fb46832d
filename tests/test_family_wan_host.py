"""StyleAlignedPatch on Wan 2.1 / 2.2 (comfy/ldm/wan WanModel): tiny random video models, the host's sampler.

The equations are checked against an independent implementation written here from the architecture: it
replaces the host's RoPE call in the self-attention (apply_rope1) with one that records the model's table
and leaves q/k as they are, and the host's self-attention call with the published order done directly:
AdaIN of each target clip's q/k to the reference clip's (per head and channel, over all video tokens),
RoPE with our own 3-axis maths at (frame, row, column), the reference's keys rotated at columns shifted by
the clip width, times lambda, and its values appended; one attention per call with an additive bias that
keeps the reference on its own tokens and, for "matching frames", lets a target's frame-t queries see the
reference's frame-t keys only. Cross-attention (text) runs the host's own code and must be untouched.
"""

import math

import pytest
import torch

from host.sampling import sample, style_aligned
from host.tiny_dit_models import dit_conditioning, tiny_dit
from host.tiny_families.wan import VIDEO_FRAMES, WAN21_CONFIG
from test_transformer_host import adain, own_rope, rotate_pairs

LATENT = 8  # 8x8 latent, patch (1, 2, 2): 4x4 tokens per frame
GRID = LATENT // 2
FRAME_TOKENS = GRID * GRID
LAMBDA = 1.1
REFERENCE_TOLERANCE = 1e-5
HEAD_DIM = WAN21_CONFIG["dim"] // WAN21_CONFIG["num_heads"]
AXES = [HEAD_DIM - 4 * (HEAD_DIM // 6), 2 * (HEAD_DIM // 6), 2 * (HEAD_DIM // 6)]  # WanModel's rope axes


def max_diff(a, b):
    return (a - b).abs().max().item()


def video_noise(kind, batch, frames=VIDEO_FRAMES, seed=0):
    channels = 48 if kind == "wan22_5b" else 16
    return torch.randn(batch, channels, frames, LATENT, LATENT, generator=torch.Generator().manual_seed(seed))


def conds(kind):
    return dit_conditioning(kind, seed=1), dit_conditioning(kind, seed=2)


def video_ids(frames, col_offset=0.0):
    """(frame, row, column) ids, time-major like the model's tokens."""
    t, h, w = torch.meshgrid(torch.arange(frames), torch.arange(GRID), torch.arange(GRID), indexing="ij")
    return torch.stack([t, h, w + col_offset], dim=-1).reshape(-1, 3).float()


# ---- the independent implementation -------------------------------------------------------------

def install_independent(patch, frames, images_per_chunk, reference_index, matching_frames=False):
    import comfy.ldm.wan.model as host

    original_attention = host.optimized_attention
    cos, sin = own_rope(video_ids(frames), AXES, 10000.0)
    shifted_cos, shifted_sin = own_rope(video_ids(frames, col_offset=GRID), AXES, 10000.0)
    frame_of = torch.arange(frames * FRAME_TOKENS) // FRAME_TOKENS
    seen = {"self": 0, "cross": 0, "rope_pending": 0}

    def capture_rope(x, freqs):
        # The model's own table on the video tokens is our RoPE at (frame, row, column).
        torch.testing.assert_close(freqs[0, :, 0, :, 0, 0].float(), cos, atol=1e-5, rtol=0)
        torch.testing.assert_close(freqs[0, :, 0, :, 1, 0].float(), sin, atol=1e-5, rtol=0)
        seen["rope_pending"] += 1
        return x  # q / k stay before RoPE for the independent attention

    def attention(q, k, v, heads, transformer_options={}, **kwargs):
        if seen["rope_pending"] != 2:  # cross-attention: the host's own call, untouched
            seen["cross"] += 1
            return original_attention(q, k, v, heads, transformer_options=transformer_options, **kwargs)
        seen["rope_pending"] = 0
        seen["self"] += 1
        rows, tokens, width = q.shape
        assert tokens == frames * FRAME_TOKENS
        q, k, v = (t.reshape(rows, tokens, heads, width // heads).transpose(1, 2).double() for t in (q, k, v))
        chunks = len(transformer_options["cond_or_uncond"])
        assert rows == chunks * images_per_chunk
        references = [chunk * images_per_chunk + reference_index for chunk in range(chunks)]
        q, k = q.clone(), k.clone()
        for chunk, ref in enumerate(references):
            for row in range(chunk * images_per_chunk, (chunk + 1) * images_per_chunk):
                if row != ref:
                    q[row] = adain(q[row], q[ref])
                    k[row] = adain(k[row], k[ref])
        q_rot, k_rot = (rotate_pairs(x, cos, sin).double() for x in (q, k))
        reference_rows = [references[row // images_per_chunk] for row in range(rows)]
        reference_keys = rotate_pairs(k[reference_rows], shifted_cos, shifted_sin).double() * LAMBDA
        keys = torch.cat([k_rot, reference_keys], dim=2)
        values = torch.cat([v, v[reference_rows]], dim=2)
        bias = torch.zeros(rows, 1, tokens, 2 * tokens, dtype=torch.float64)
        if matching_frames:
            bias[..., tokens:] = torch.where(frame_of[:, None] == frame_of[None, :], 0.0, -math.inf)
        for ref in references:
            bias[ref, ..., tokens:] = -math.inf
        out = torch.nn.functional.scaled_dot_product_attention(q_rot, keys, values, attn_mask=bias)
        return out.transpose(1, 2).reshape(rows, tokens, width).float()

    patch.setattr(host, "apply_rope1", capture_rope)
    patch.setattr(host, "optimized_attention", attention)
    return seen


def one_step(model, noise, positive, negative):
    """One Euler step at cfg 3: one model call with both chunks ([uncond, cond])."""
    return sample(model, noise, positive, negative, cfg=3.0, steps=1)


@pytest.mark.parametrize("kind", ["wan21", "wan22_5b"])
@pytest.mark.parametrize("shared_frames", ["all frames", "matching frames"])
def test_one_forward_matches_independent_implementation(kind, shared_frames, pack, monkeypatch):
    model = tiny_dit(kind)
    positive, negative = conds(kind)
    noise = video_noise(kind, 3, seed=3)
    patched = one_step(style_aligned(model, shared_frames=shared_frames), noise, positive, negative)
    plain = one_step(model, noise, positive, negative)
    seen = install_independent(monkeypatch, VIDEO_FRAMES, 3, 0, matching_frames=shared_frames == "matching frames")
    independent = one_step(model, noise, positive, negative)
    monkeypatch.undo()
    blocks = WAN21_CONFIG["num_layers"]
    assert seen["self"] == blocks and seen["cross"] == blocks  # every block shared; text calls passed through
    assert max_diff(patched[0], plain[0]) < REFERENCE_TOLERANCE
    assert max_diff(patched[1:], plain[1:]) > 1e-2  # the comparison is not between two unpatched runs
    assert max_diff(patched, independent) < 1e-4


def test_matching_frames_differs_from_all_frames_and_is_its_own_oracle(pack, monkeypatch):
    """With reference_index 2: each mode equals its own oracle and not the other's."""
    model = tiny_dit("wan21")
    positive, negative = conds("wan21")
    noise = video_noise("wan21", 3, seed=5)
    outputs = {}
    for mode in ("all frames", "matching frames"):
        patched = one_step(style_aligned(model, shared_frames=mode, reference_index=2), noise, positive, negative)
        install_independent(monkeypatch, VIDEO_FRAMES, 3, 2, matching_frames=mode == "matching frames")
        outputs[mode] = (patched, one_step(model, noise, positive, negative))
        monkeypatch.undo()
    (all_patched, all_oracle), (matching_patched, matching_oracle) = outputs["all frames"], outputs["matching frames"]
    assert max_diff(all_patched, all_oracle) < 1e-4 and max_diff(matching_patched, matching_oracle) < 1e-4
    assert max_diff(all_patched[:2], matching_patched[:2]) > 1e-3
    plain = one_step(model, noise, positive, negative)
    assert max_diff(all_patched[2], plain[2]) < REFERENCE_TOLERANCE and max_diff(matching_patched[2], plain[2]) < REFERENCE_TOLERANCE


def test_one_frame_image_set(pack, monkeypatch):
    """One latent frame is a still image: the same equations, and the two frame modes coincide."""
    model = tiny_dit("wan21")
    positive, negative = conds("wan21")
    noise = video_noise("wan21", 3, frames=1, seed=7)
    patched = one_step(style_aligned(model), noise, positive, negative)
    matching = one_step(style_aligned(model, shared_frames="matching frames"), noise, positive, negative)
    plain = one_step(model, noise, positive, negative)
    install_independent(monkeypatch, 1, 3, 0)
    independent = one_step(model, noise, positive, negative)
    monkeypatch.undo()
    assert max_diff(patched, independent) < 1e-4 and torch.equal(patched, matching)
    assert max_diff(patched[0], plain[0]) < REFERENCE_TOLERANCE and max_diff(patched[1:], plain[1:]) > 1e-2
    several = sample(style_aligned(model), noise, positive, negative, cfg=3.0, steps=3)
    assert max_diff(several[0], sample(model, noise, positive, negative, cfg=3.0, steps=3)[0]) < REFERENCE_TOLERANCE


def split_sample(models, noise, positive, negative, steps=4, switch=2, cfg=3.0):
    """Wan 2.2 A14B's two experts as KSamplerAdvanced runs them: the high-noise model for the first steps
    (leftover noise returned), the low-noise model for the rest from there."""
    import comfy.sample

    high, low = models
    latent = torch.zeros_like(noise)
    first = comfy.sample.sample(high, noise, steps, cfg, "euler", "normal", positive, negative, latent,
                                start_step=0, last_step=switch, force_full_denoise=False, disable_pbar=True, seed=0)
    return comfy.sample.sample(low, torch.zeros_like(noise), steps, cfg, "euler", "normal", positive, negative, first,
                               start_step=switch, last_step=steps, force_full_denoise=True, disable_noise=True,
                               disable_pbar=True, seed=0)


def test_two_experts_each_patched_keep_one_reference(pack):
    """Wan 2.2 A14B: the high- and low-noise experts are two models; StyleAlignedPatch on each with the same
    reference slot keeps that clip exactly the unpatched one and styles the others."""
    high, low = tiny_dit("wan21", seed=0), tiny_dit("wan21", seed=1)
    positive, negative = conds("wan21")
    noise = video_noise("wan21", 3, seed=9)
    plain = split_sample((high, low), noise, positive, negative)
    aligned = split_sample((style_aligned(high, reference_index=1), style_aligned(low, reference_index=1)), noise, positive, negative)
    only_high = split_sample((style_aligned(high, reference_index=1), low), noise, positive, negative)
    assert aligned.isfinite().all()
    assert max_diff(aligned[1], plain[1]) < REFERENCE_TOLERANCE and max_diff(only_high[1], plain[1]) < REFERENCE_TOLERANCE
    for target in (0, 2):
        assert max_diff(aligned[target], plain[target]) > 1e-2
        assert max_diff(aligned[target], only_high[target]) > 1e-3  # the low-noise expert shares too


def test_bfloat16_video_has_no_nan_and_keeps_the_reference(pack):
    model = tiny_dit("wan21", dtype=torch.bfloat16)
    positive, negative = conds("wan21")
    noise = video_noise("wan21", 3, seed=11)
    for mode in ("all frames", "matching frames"):
        plain = sample(model, noise, positive, negative, steps=2)
        aligned = sample(style_aligned(model, shared_frames=mode), noise, positive, negative, steps=2)
        assert aligned.isfinite().all() and max_diff(aligned[0], plain[0]) < REFERENCE_TOLERANCE


# ---- conditioning frames are refused, never restyled ------------------------------------------------

def refused(kind, noise, positive, negative, error_type):
    with pytest.raises(error_type) as error:
        sample(style_aligned(tiny_dit(kind)), noise, positive, negative, cfg=1.0, steps=1)
    message = str(error.value)
    assert "StyleAlignedPatch" in message and "conditioning frames" in message
    return message


def test_image_to_video_channels_are_refused(pack, error_type):
    """Wan 2.1 / 2.2 I2V and first/last frame: the image and its mask are concatenated to the latent."""
    positive, negative = conds("wan21_i2v")
    start = video_noise("wan21", 1, seed=4)
    positive = [[c, dict(extras, concat_latent_image=start)] for c, extras in positive]
    message = refused("wan21_i2v", video_noise("wan21", 2), positive, negative, error_type)
    assert "conditioning channels concatenated" in message


def test_wan22_first_frame_noise_mask_is_refused(pack, error_type):
    """Wan 2.2 TI2V (Wan22ImageToVideoLatent): the first frame is the image, fixed by a noise mask."""
    import comfy.sample

    model = style_aligned(tiny_dit("wan22_5b"))
    positive, negative = conds("wan22_5b")
    noise = video_noise("wan22_5b", 2)
    mask = torch.ones(2, 1, VIDEO_FRAMES, LATENT, LATENT)
    mask[:, :, 0] = 0.0
    with pytest.raises(error_type) as error:
        comfy.sample.sample(model, noise, 1, 1.0, "euler", "normal", positive, negative, torch.zeros_like(noise),
                            noise_mask=mask, disable_pbar=True, seed=0)
    assert "StyleAlignedPatch" in str(error.value) and "noise mask fixing frames" in str(error.value)


def test_vace_is_refused(pack, error_type):
    positive, negative = conds("wan21_vace")
    message = refused("wan21_vace", video_noise("wan21", 2), positive, negative, error_type)
    assert "VACE" in message


def test_other_wan_variants_are_refused_at_sampling(pack, error_type):
    """Camera, HuMo, S2V, Animate, SCAIL... (WanModel's subclasses in the same host module) add their own
    inputs and tokens: refused with the variant's name, not shared as if they were text-to-video."""
    model = tiny_dit("wan21")
    variant = model.clone()
    dm = model.model.diffusion_model
    original_class = type(dm)
    dm.__class__ = type("HumoWanModel", (original_class,), {"__module__": original_class.__module__})
    try:
        positive, negative = conds("wan21")
        with pytest.raises(error_type) as error:
            sample(style_aligned(variant), video_noise("wan21", 2), positive, negative, cfg=1.0, steps=1)
    finally:
        dm.__class__ = original_class
    assert "StyleAlignedPatch" in str(error.value) and "HumoWanModel" in str(error.value)
