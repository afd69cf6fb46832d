"""The core against an independent, loop-based implementation of the paper's equations."""

import math

import pytest
import torch

from stylealign_core import (
    VARIANCE_EPS,
    PatchRuntime,
    SharedAttentionPatch,
    StyleAlignedOptions,
)


def reference_stats(tokens):
    """Per-channel mean and std over tokens, written out with sums (float64 for the check)."""
    x = tokens.double()
    count = x.shape[0]
    mean = x.sum(dim=0) / count
    variance = ((x - mean) ** 2).sum(dim=0) / count
    return mean, torch.sqrt(variance + VARIANCE_EPS)


def reference_adain(x, y):
    mean_x, std_x = reference_stats(x)
    mean_y, std_y = reference_stats(y)
    return (std_y * (x.double() - mean_x) / std_x + mean_y).to(x.dtype)


def reference_patch(hidden, cond_or_uncond, reference_index, adain_q=True, adain_k=True, adain_v=False, share=True):
    """Loop over rows: each image of chunk c uses the reference row c * B + r of that chunk."""
    rows = hidden.shape[0]
    images = rows // len(cond_or_uncond)
    q_rows, k_rows, v_rows = [], [], []
    for row in range(rows):
        ref_row = (row // images) * images + reference_index
        x, ref = hidden[row], hidden[ref_row]
        q = reference_adain(x, ref) if adain_q else x
        k = reference_adain(x, ref) if adain_k else x
        v = reference_adain(x, ref) if adain_v else x
        if share:
            k = torch.cat([k, ref])
            v = torch.cat([v, ref])
        q_rows.append(q)
        k_rows.append(k)
        v_rows.append(v)
    return torch.stack(q_rows), torch.stack(k_rows), torch.stack(v_rows)


def run_patch(hidden, cond_or_uncond, **option_values):
    patch = SharedAttentionPatch(StyleAlignedOptions(**option_values), PatchRuntime())
    extra_options = {"cond_or_uncond": cond_or_uncond, "block": ("input", 1, 0), "block_index": 0}
    return patch(hidden, hidden, hidden, extra_options)


@pytest.mark.parametrize(
    "cond_or_uncond, images, reference_index",
    [([1, 0], 3, 0), ([0], 3, 2), ([1, 0], 4, 1), ([0, 1, 2], 2, 1), ([1], 5, 4)],
)
@pytest.mark.parametrize("adain_values", [False, True])
def test_patch_matches_loop_implementation(cond_or_uncond, images, reference_index, adain_values):
    generator = torch.Generator().manual_seed(len(cond_or_uncond) * 10 + images)
    # Distinct per-image statistics so a wrong reference row or axis cannot pass by accident.
    hidden = torch.randn(len(cond_or_uncond) * images, 16, 8, generator=generator)
    hidden = hidden * torch.rand(hidden.shape[0], 1, 8, generator=generator) * 3 + torch.randn(hidden.shape[0], 1, 8, generator=generator)
    q, k, v = run_patch(hidden, cond_or_uncond, reference_index=reference_index, adain_values=adain_values)
    q_ref, k_ref, v_ref = reference_patch(hidden, cond_or_uncond, reference_index, adain_v=adain_values)
    assert q.shape == (hidden.shape[0], 16, 8) and k.shape == v.shape == (hidden.shape[0], 32, 8)
    torch.testing.assert_close(q, q_ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(k, k_ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(v, v_ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "flags",
    [
        dict(adain_queries=False),
        dict(adain_keys=False),
        dict(share_attention=False),
        dict(adain_queries=False, adain_keys=False, adain_values=True),
    ],
)
def test_each_option_matches_loop_implementation(flags):
    hidden = torch.randn(6, 10, 4, generator=torch.Generator().manual_seed(3)) * 2 + 1
    q, k, v = run_patch(hidden, [1, 0], reference_index=1, **flags)
    q_ref, k_ref, v_ref = reference_patch(
        hidden, [1, 0], 1,
        adain_q=flags.get("adain_queries", True),
        adain_k=flags.get("adain_keys", True),
        adain_v=flags.get("adain_values", False),
        share=flags.get("share_attention", True),
    )
    for got, want in ((q, q_ref), (k, k_ref), (v, v_ref)):
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_reference_rows_pass_through_bit_identical():
    hidden = torch.randn(8, 12, 6, generator=torch.Generator().manual_seed(4)).half()
    q, k, v = run_patch(hidden, [1, 0], reference_index=2)
    for ref_row in (2, 6):
        assert torch.equal(q[ref_row], hidden[ref_row])
        assert torch.equal(k[ref_row], torch.cat([hidden[ref_row], hidden[ref_row]]))
        assert torch.equal(v[ref_row], torch.cat([hidden[ref_row], hidden[ref_row]]))


def test_float16_one_token_and_constant_features_stay_finite():
    one_token = torch.randn(4, 1, 8, dtype=torch.float16)
    q, k, v = run_patch(one_token, [1, 0])
    assert all(t.isfinite().all() for t in (q, k, v))
    constant = torch.full((3, 9, 8), 0.5, dtype=torch.float16)
    constant[0] = torch.randn(9, 8, dtype=torch.float16)  # the reference has structure, targets are constant
    q, _, _ = run_patch(constant, [0])
    assert q.isfinite().all()
    # A constant target maps onto the reference's mean (its deviations are all zero).
    torch.testing.assert_close(q[1].float(), constant[0].float().mean(0, keepdim=True).expand(9, 8), atol=2e-3, rtol=0)
    large = torch.randn(3, 64, 8, dtype=torch.float16) * 3000  # statistics would overflow in float16
    q, _, _ = run_patch(large, [0])
    assert q.isfinite().all()


def test_schedule_and_layer_filter_leave_inputs_untouched():
    hidden = torch.randn(4, 5, 3)
    runtime = PatchRuntime()
    options = StyleAlignedOptions(sigma_start=5.0, sigma_end=1.0)
    patch = SharedAttentionPatch(options, runtime, shared_layers=frozenset({("output", 3, 0)}))
    base = {"cond_or_uncond": [1, 0], "block": ("output", 3, 0), "block_index": 0}
    out_of_schedule = patch(hidden, hidden, hidden, dict(base, sigmas=torch.tensor([7.0])))
    assert all(t is hidden for t in out_of_schedule)
    other_layer = patch(hidden, hidden, hidden, dict(base, sigmas=torch.tensor([2.0]), block=("input", 1)))
    assert all(t is hidden for t in other_layer)
    in_schedule = patch(hidden, hidden, hidden, dict(base, sigmas=torch.tensor([2.0])))
    assert in_schedule[1].shape[1] == 10
    assert runtime.patch_calls == 3


def test_strength_logit_shift_math():
    assert StyleAlignedOptions(reference_strength=2.0).logit_shift == pytest.approx(math.log(2.0))
    assert not StyleAlignedOptions().needs_logit_shift
    # Strength 0 removes the reference tokens altogether.
    hidden = torch.randn(4, 5, 3)
    _, k, _ = run_patch(hidden, [0], reference_strength=0.0)
    assert k.shape[1] == 5
