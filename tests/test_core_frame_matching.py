"""Matching frames (video): a target's image queries of frame f see their own keys and only frame f of the
reference's appended image keys; queries outside the image see every appended key. Held equal to one
attention over [own ; appended] keys with that rule written as an additive bias, alone and combined with
the call's own mask and the reference_strength logit shift."""

import math

import pytest
import torch
from dataclasses import replace

from stylealign_core.transformer import CALL_LAYOUT_KEY
from test_core_transformer import HEADS, IMAGE, TEXT, call, independent_masked_sharing, layout_for, make_override, qkv, sdpa_backend

FRAMES = 3
FRAME = IMAGE // FRAMES


def frame_bias(tokens):
    """(queries, appended keys): -inf where an image query's frame differs from the appended key's."""
    bias = torch.zeros(tokens, IMAGE, dtype=torch.float64)
    key_frame = torch.arange(IMAGE) // FRAME
    for query in range(TEXT, TEXT + IMAGE):
        bias[query, key_frame != (query - TEXT) // FRAME] = -math.inf
    return bias


@pytest.mark.parametrize("strength", [1.0, 0.5])
@pytest.mark.parametrize("own_mask", [False, True])
def test_matching_frames_equals_a_frame_bias_on_the_appended_keys(strength, own_mask):
    q, k, v = qkv(extra=2)
    rows, tokens = q.shape[0], q.shape[2]
    layout = replace(layout_for(), frames=FRAMES)
    override = make_override(logit_shift=math.log(strength), matching_frames=True)
    options = {"block_type": "single", "block_index": 0, CALL_LAYOUT_KEY: layout}
    mask = full = torch.zeros(1, 1, 1, tokens)
    kwargs = {}
    if own_mask:  # per-query additive mask on the call's own keys
        mask = full = -2.0 * torch.rand(1, 1, tokens, tokens, generator=torch.Generator().manual_seed(5))
        kwargs["mask"] = mask
    out = override(sdpa_backend(override.calls), q, k, v, HEADS, skip_reshape=True, skip_output_reshape=True, transformer_options=options, **kwargs)
    expected = independent_masked_sharing(q, k, v, full, layout, logit_shift=math.log(strength), appended_bias=frame_bias(tokens))
    torch.testing.assert_close(out.double(), expected, atol=1e-5, rtol=0)
    # The reference's own call, then one call per frame (own keys + one frame), then the text and extra queries.
    assert [c["keys"] for c in override.calls] == [tokens + FRAME] * FRAMES + [tokens + IMAGE, tokens]
    assert [c["rows"] for c in override.calls] == [4] * (FRAMES + 1) + [2]
    all_frames = call(make_override(logit_shift=math.log(strength)), q, k, v, layout_for(), skip_output_reshape=True, **kwargs)
    image = slice(TEXT, TEXT + IMAGE)
    assert (all_frames[:, :, image] - out[:, :, image]).abs().max() > 1e-3


def test_matching_frames_flattened_output_and_one_frame():
    q, k, v = qkv(extra=0)
    layout = replace(layout_for(), frames=FRAMES)
    out = call(make_override(matching_frames=True), q, k, v, layout)
    heads_first = call(make_override(matching_frames=True), q, k, v, replace(layout_for(), frames=FRAMES), skip_output_reshape=True)
    torch.testing.assert_close(out, heads_first.transpose(1, 2).reshape(out.shape), atol=1e-6, rtol=0)
    # One frame (an image): matching frames is all frames, one target call.
    override = make_override(matching_frames=True)
    assert torch.equal(call(override, q, k, v, layout_for()), call(make_override(), q, k, v, layout_for()))
    assert len(override.calls) == 2
