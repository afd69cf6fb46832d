"""Batch layout, layer selection, the model-call wrapper and the reference-strength override."""

import math

import pytest
import torch

from stylealign_core import (
    PatchRuntime,
    ReferenceLogitShift,
    SharedAttentionPatch,
    StyleAlignedError,
    StyleAlignedOptions,
    UNetModelCall,
    batch_layout,
    evenly_spread,
    select_shared_layers,
)
from stylealign_core.model_call_inputs import ModelCallInputs
from stylealign_core.unet.patch_runtime import PendingLogitShift


def test_layout_finds_reference_in_every_chunk():
    layout = batch_layout(12, [1, 0, 2], reference_index=1)
    assert (layout.chunks, layout.images_per_chunk) == (3, 4)
    assert layout.reference_rows() == [1, 5, 9]
    assert layout.target_rows() == [0, 2, 3, 4, 6, 7, 8, 10, 11]


@pytest.mark.parametrize(
    "rows, cond_or_uncond, index, words",
    [
        (6, [1, 0], 3, ["StyleAlignedPatch", "reference_index is 3", "0..2"]),
        (2, [1, 0], 0, ["StyleAlignedPatch", "1 image", "at least 2"]),
        (1, [0], 0, ["StyleAlignedPatch", "1 image"]),
        (5, [1, 0], 0, ["StyleAlignedPatch", "conditioning"]),
    ],
)
def test_layout_errors_name_node_input_and_fix(rows, cond_or_uncond, index, words):
    with pytest.raises(StyleAlignedError) as error:
        batch_layout(rows, cond_or_uncond, index)
    for word in words:
        assert word in str(error.value)


def test_evenly_spread_counts_and_spread():
    assert evenly_spread(16, 1.0) == list(range(16))
    assert evenly_spread(16, 0.0) == []
    half = evenly_spread(16, 0.5)
    assert len(half) == 8 and half[0] <= 1 and half[-1] >= 14
    assert len(evenly_spread(7, 0.3)) == 2


def test_select_shared_layers_by_block_and_fraction():
    layers = [("input", 1, 0), ("input", 2, 0), ("middle", 0, 0), ("output", 3, 0), ("output", 4, 0), ("output", 5, 0)]
    only_output = select_shared_layers(layers, StyleAlignedOptions(share_input_blocks=False, share_middle_block=False))
    assert only_output == {("output", 3, 0), ("output", 4, 0), ("output", 5, 0)}
    half = select_shared_layers(layers, StyleAlignedOptions(shared_layer_fraction=0.5))
    assert len(half) == 3 and half <= set(layers)
    assert select_shared_layers(layers, StyleAlignedOptions()) == set(layers)


def _fake_unet(patch, calls_patch=True):
    def apply_model(x, t, **c):
        if calls_patch:
            tokens = x.flatten(2).transpose(1, 2)
            patch(tokens, tokens, tokens, dict(c["transformer_options"], block=("input", 1), block_index=0))
        return x * 2

    return apply_model


def run_model_call(model_call, apply_model, args):
    """What the host adapter (nodes/patch_set.py) does: the call's inputs, the rest of the model as a callable."""
    return model_call.run(ModelCallInputs(
        x=args["input"], timestep=args["timestep"], transformer_options=args["c"]["transformer_options"],
        run_model=lambda x, transformer_options: apply_model(x, args["timestep"], **dict(args["c"], transformer_options=transformer_options)),
    ))


def test_model_call_checks_batch_before_running_and_sets_schedule():
    options = StyleAlignedOptions(reference_index=0, sigma_start=5.0, sigma_end=1.0)
    runtime = PatchRuntime()
    patch = SharedAttentionPatch(options, runtime)
    wrapper = UNetModelCall(options, runtime)
    seen = []
    original = patch.__call__

    def apply_model(x, t, **c):
        seen.append(runtime.current_call.active)
        return _fake_unet(original)(x, t, **c)

    args = lambda rows, sigma: {  # noqa: E731
        "input": torch.randn(rows, 4, 2, 2), "timestep": torch.full((rows,), sigma),
        "c": {"transformer_options": {"cond_or_uncond": [1, 0]}}, "cond_or_uncond": [1, 0],
    }
    out = run_model_call(wrapper, apply_model, args(4, 3.0))
    assert out.shape == (4, 4, 2, 2) and seen == [True]
    run_model_call(wrapper, apply_model, args(4, 9.0))
    assert seen == [True, False] and runtime.current_call is None
    with pytest.raises(StyleAlignedError, match="1 image"):
        run_model_call(wrapper, apply_model, args(2, 3.0))
    assert len(seen) == 2  # the UNet never ran for the bad batch


def test_model_call_detects_unpatched_models():
    options = StyleAlignedOptions()
    runtime = PatchRuntime()
    patch = SharedAttentionPatch(options, runtime)
    args = {"input": torch.randn(2, 4, 2, 2), "timestep": torch.ones(2), "c": {"transformer_options": {"cond_or_uncond": [0]}}, "cond_or_uncond": [0]}
    assert run_model_call(UNetModelCall(options, runtime), _fake_unet(patch), args).shape == (2, 4, 2, 2)
    with pytest.raises(StyleAlignedError, match="never ran the self-attention patch"):
        run_model_call(UNetModelCall(options, runtime), _fake_unet(patch, calls_patch=False), args)


def naive_attention(q, k, v, heads, mask=None, **kwargs):
    b, _, dim = q.shape
    d = dim // heads
    q, k, v = (t.reshape(b, -1, heads, d).transpose(1, 2) for t in (q, k, v))
    logits = q @ k.transpose(-1, -2) / math.sqrt(d)
    if mask is not None:
        logits = logits + mask
    return (logits.softmax(-1) @ v).transpose(1, 2).reshape(b, -1, dim)


@pytest.mark.parametrize("strength", [0.5, 2.0, 3.5])
def test_reference_strength_multiplies_reference_weights(strength):
    generator = torch.Generator().manual_seed(5)
    own, ref, heads, dim = 6, 6, 2, 8
    q = torch.randn(3, own, dim, generator=generator)
    k = torch.randn(3, own + ref, dim, generator=generator)
    v = torch.randn(3, own + ref, dim, generator=generator)
    runtime = PatchRuntime()
    override = ReferenceLogitShift(runtime)
    runtime.pending_shift = PendingLogitShift(own_tokens=own, total_tokens=own + ref, shift=math.log(strength))
    got = override(naive_attention, q, k, v, heads)
    # Independent: softmax weights of the reference tokens multiplied by `strength`, then renormalised.
    d = dim // heads
    qh, kh, vh = (t.reshape(3, -1, heads, d).transpose(1, 2) for t in (q, k, v))
    weights = (qh @ kh.transpose(-1, -2) / math.sqrt(d)).exp()
    weights[..., own:] *= strength
    want = ((weights / weights.sum(-1, keepdim=True)) @ vh).transpose(1, 2).reshape(3, own, dim)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert runtime.pending_shift is None
    # Consumed once: the next attention call (cross-attention) is left alone.
    torch.testing.assert_close(override(naive_attention, q, k, v, heads), naive_attention(q, k, v, heads))


def test_strength_override_chains_previous_override():
    calls = []

    def previous(fn, *args, **kwargs):
        calls.append(kwargs.get("mask") is not None)
        return fn(*args, **kwargs)

    runtime = PatchRuntime()
    runtime.pending_shift = PendingLogitShift(own_tokens=2, total_tokens=4, shift=1.0)
    q, k = torch.randn(1, 2, 4), torch.randn(1, 4, 4)
    ReferenceLogitShift(runtime, previous)(naive_attention, q, k, k, 1)
    assert calls == [True]
