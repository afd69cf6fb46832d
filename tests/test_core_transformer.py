"""The transformer route's core alone (pure torch): RoPE maths, block selection, the override's pass-through
rules and its split into reference and target calls."""

import math

import pytest
import torch

from stylealign_core.batch_layout import BatchLayout
from stylealign_core.share_flags import ShareFlags
from stylealign_core.transformer import CALL_LAYOUT_KEY, CallLayout, SharedAttentionOverride, TransformerSharing, rotate, unrotate
from stylealign_core.transformer.families.flux import FluxFamily
from stylealign_core.transformer.block_selection import chosen_groups, select_shared_blocks

HEADS, DIM, TEXT, IMAGE = 2, 8, 3, 6


def rotations(positions: torch.Tensor, dim: int = DIM, theta: float = 10000.0) -> torch.Tensor:
    """(1, 1, L, D/2, 2, 2) rotation matrices [[cos, -sin], [sin, cos]] for one position axis."""
    omega = 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    angle = positions.double()[:, None] * omega
    cos, sin = angle.cos(), angle.sin()
    return torch.stack([cos, -sin, sin, cos], dim=-1).reshape(1, 1, -1, dim // 2, 2, 2).float()


def test_rotate_is_the_pairwise_rotation_and_unrotate_undoes_it():
    x = torch.randn(2, HEADS, 5, DIM)
    positions = torch.arange(5.0) * 3
    rotated = rotate(x, rotations(positions))
    angle = positions.double()[:, None] * (1.0 / 10000.0 ** (torch.arange(0, DIM, 2, dtype=torch.float64) / DIM))
    x0, x1 = x[..., 0::2].double(), x[..., 1::2].double()
    expected = torch.stack([angle.cos() * x0 - angle.sin() * x1, angle.sin() * x0 + angle.cos() * x1], -1).flatten(-2)
    torch.testing.assert_close(rotated.double(), expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(unrotate(rotated, rotations(positions)), x, atol=1e-5, rtol=0)


def test_shift_after_rotation_equals_rotation_at_shifted_positions():
    x = torch.randn(1, HEADS, 4, DIM)
    positions = torch.tensor([0.0, 1.0, 2.0, 3.0])
    shifted = rotate(rotate(x, rotations(positions)), rotations(torch.tensor([4.0])))
    torch.testing.assert_close(shifted, rotate(x, rotations(positions + 4)), atol=1e-5, rtol=0)


def test_block_selection():
    family = FluxFamily()
    counts = {"double": 3, "single": 4}
    assert chosen_groups(family, "auto") == ("single",)
    assert select_shared_blocks(family, counts, "auto", 1.0) == {("single", i) for i in range(4)}
    assert select_shared_blocks(family, counts, "double", 1.0) == {("double", i) for i in range(3)}
    assert len(select_shared_blocks(family, counts, "all", 1.0)) == 7
    assert select_shared_blocks(family, counts, "single", 0.5) == {("single", 1), ("single", 3)}
    assert select_shared_blocks(family, counts, "auto", 0.0) == frozenset()


def sdpa_backend(calls):
    def backend(q, k, v, heads, mask=None, skip_reshape=False, skip_output_reshape=False, transformer_options=None, **kwargs):
        calls.append({"rows": q.shape[0], "keys": k.shape[-2] if skip_reshape else k.shape[1], "mask": mask})
        if not skip_reshape:
            q, k, v = (t.view(t.shape[0], t.shape[1], heads, -1).transpose(1, 2) for t in (q, k, v))
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return out if skip_output_reshape else out.transpose(1, 2).reshape(out.shape[0], out.shape[2], -1)

    return backend


def layout_for(chunks=2, images=3, reference=1, active=True):
    return CallLayout(
        batch=BatchLayout(chunks=chunks, images_per_chunk=images, reference_index=reference),
        image_start=TEXT, image_tokens=IMAGE, active=active,
        image_rotations=rotations(torch.arange(float(IMAGE))), shift_rotation=rotations(torch.tensor([float(IMAGE)])),
    )


def sharing(**changes):
    values = dict(
        shared_blocks=frozenset({("single", 0)}),
        flags=ShareFlags(adain_queries=True, adain_keys=True, adain_values=False, share=True),
        key_scale=1.1, position_shift=True,
    )
    values.update(changes)
    return TransformerSharing(**values)


def qkv(rows=6, extra=2):
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(rows, HEADS, TEXT + IMAGE + extra, DIM, generator=generator) for _ in range(3)]


def call(override, q, k, v, layout, block=("single", 0), **kwargs):
    options = {"block_type": block[0], "block_index": block[1], CALL_LAYOUT_KEY: layout}
    return override(sdpa_backend(override.calls), q, k, v, HEADS, skip_reshape=True, transformer_options=options, **kwargs)


def make_override(previous=None, **changes):
    override = SharedAttentionOverride(FluxFamily(), sharing(**changes), previous)
    override.calls = []
    return override


@pytest.mark.parametrize(
    "case", ["no layout", "mask of another split", "unshared block", "inactive", "cross-attention", "other rows"]
)
def test_calls_it_cannot_share_pass_through_unchanged(case):
    override = make_override()
    q, k, v = qkv()
    plain = sdpa_backend([])(q, k, v, HEADS, skip_reshape=True)
    layout = layout_for(active=case != "inactive")
    if case == "no layout":
        out = override(sdpa_backend(override.calls), q, k, v, HEADS, skip_reshape=True, transformer_options={})
    elif case == "mask of another split":  # rows of a mask that are not this call's rows
        mask = torch.zeros(4, 1, 1, k.shape[2])
        options = {"block_type": "single", "block_index": 0, CALL_LAYOUT_KEY: layout}
        received = []

        def backend(*args, mask=None, **kwargs):  # records the mask, then attends without it
            received.append(mask)
            return sdpa_backend(override.calls)(*args, **kwargs)

        out = override(backend, q, k, v, HEADS, mask=mask, skip_reshape=True, transformer_options=options)
        assert received == [mask]
        assert layout.reached_calls == 1 and layout.shared_calls == 0
        assert layout.pass_causes == {"its attention mask's shape"}
    elif case == "unshared block":
        out = call(override, q, k, v, layout, block=("double", 0))
    elif case == "cross-attention":
        out = call(override, q, k[:, :, :5], v[:, :, :5], layout)
        plain = sdpa_backend([])(q, k[:, :, :5], v[:, :, :5], HEADS, skip_reshape=True)
    elif case == "other rows":
        out = call(override, q[:4], k[:4], v[:4], layout)
        plain = sdpa_backend([])(q[:4], k[:4], v[:4], HEADS, skip_reshape=True)
    else:
        out = call(override, q, k, v, layout)
    assert len(override.calls) == 1
    assert torch.equal(out, plain)


def test_reference_rows_are_their_own_call_and_targets_see_appended_keys():
    override = make_override()
    q, k, v = qkv()
    layout = layout_for()
    out = call(override, q, k, v, layout)
    assert [c["rows"] for c in override.calls] == [4, 2]
    assert [c["keys"] for c in override.calls] == [k.shape[2] + IMAGE, k.shape[2]]
    reference_rows = [1, 4]
    alone = sdpa_backend([])(q[reference_rows], k[reference_rows], v[reference_rows], HEADS, skip_reshape=True)
    assert torch.equal(out[reference_rows], alone)
    assert layout.shared_calls == 1


def test_flattened_format_gives_the_same_result():
    q, k, v = qkv()
    heads_first = call(make_override(), q, k, v, layout_for())
    flat = [t.transpose(1, 2).reshape(t.shape[0], t.shape[2], -1) for t in (q, k, v)]
    override = make_override()
    options = {"block_type": "single", "block_index": 0, CALL_LAYOUT_KEY: layout_for()}
    flat_out = override(sdpa_backend(override.calls), *flat, HEADS, transformer_options=options)
    torch.testing.assert_close(flat_out, heads_first, atol=1e-6, rtol=0)


def test_previous_override_wraps_both_calls():
    seen = []

    def previous(backend, *args, **kwargs):
        seen.append(args[0].shape[0])
        return backend(*args, **kwargs)

    q, k, v = qkv()
    call(make_override(previous), q, k, v, layout_for())
    assert seen == [4, 2]


def test_reference_strength_is_a_logit_shift_on_the_appended_keys():
    q, k, v = qkv()
    override = make_override(logit_shift=math.log(2.0))
    out = call(override, q, k, v, layout_for())
    mask = override.calls[0]["mask"]
    assert mask.shape[-1] == k.shape[2] + IMAGE
    assert torch.all(mask[..., : k.shape[2]] == 0) and torch.allclose(mask[..., k.shape[2]:], torch.tensor(math.log(2.0)))
    plain = call(make_override(), q, k, v, layout_for())
    reference_rows = [1, 4]
    assert torch.equal(out[reference_rows], plain[reference_rows])
    assert (out - plain).abs().max() > 1e-3


def test_extra_tokens_after_the_image_are_not_normalised_or_shared():
    q, k, v = qkv(extra=4)
    override = make_override()
    out = call(override, q, k, v, layout_for())
    changed = q.clone()
    changed[:, :, TEXT + IMAGE :] += 5.0  # only the queries of the extra tokens differ
    again = call(make_override(), changed, k, v, layout_for())
    # Their own outputs change, every other token's output is the same: they were not normalised with or
    # into the image tokens' statistics, and their keys were not appended.
    assert torch.equal(out[:, : TEXT + IMAGE], again[:, : TEXT + IMAGE])


def independent_masked_sharing(q, k, v, mask, layout, key_scale=1.1, logit_shift=0.0):
    """The override's equation written directly, one SDPA call over all rows: AdaIN before RoPE of the
    targets' image q/k, [own keys ; lambda R(delta) reference image keys], and one additive bias per row:
    the row's own mask on its own keys, 0 (+ logit shift) on the appended keys, -inf for the reference row."""
    image = slice(TEXT, TEXT + IMAGE)
    rot, shift_rot = layout.image_rotations, layout.shift_rotation
    images = layout.batch.images_per_chunk
    q, k = q.clone().double(), k.clone().double()
    rows, tokens = q.shape[0], q.shape[2]
    refs = [row // images * images + layout.batch.reference_index for row in range(rows)]
    plain_q = unrotate(q[:, :, image], rot).double()
    plain_k = unrotate(k[:, :, image], rot).double()

    def adain(x, y):
        mx, vx = x.mean(-2, keepdim=True), x.var(-2, keepdim=True, unbiased=False)
        my, vy = y.mean(-2, keepdim=True), y.var(-2, keepdim=True, unbiased=False)
        return (x - mx) / (vx + 1e-5).sqrt() * (vy + 1e-5).sqrt() + my

    for row in range(rows):
        if row != refs[row]:
            q[row, :, image] = rotate(adain(plain_q[row], plain_q[refs[row]]).float(), rot).double()
            k[row, :, image] = rotate(adain(plain_k[row], plain_k[refs[row]]).float(), rot).double()
    appended = rotate(k[refs][:, :, image].float(), shift_rot).double() * key_scale
    keys = torch.cat([k, appended], dim=2)
    values = torch.cat([v.double(), v.double()[refs][:, :, image]], dim=2)
    bias = torch.zeros(rows, 1, tokens, tokens + IMAGE, dtype=torch.float64)
    bias[..., :tokens] = mask.double().expand(rows, 1, tokens, tokens) if mask.dim() == 4 else mask.double()
    bias[..., tokens:] = logit_shift
    for row in set(refs):
        bias[row, ..., tokens:] = -math.inf
    return torch.nn.functional.scaled_dot_product_attention(q, keys, values, attn_mask=bias)


@pytest.mark.parametrize("mask_kind", ["qwen key padding", "per-query 4-d", "boolean"])
@pytest.mark.parametrize("strength", [1.0, 0.5])
def test_masked_call_is_shared_with_own_keys_masked_and_appended_keys_never(mask_kind, strength):
    """Qwen-Image on 0.33 passes its text padding mask (rows, 1, keys) by position: each row keeps its own
    mask on its own keys, the appended reference image keys are never masked (held equal to one attention
    over [own ; appended] keys with that bias written out)."""
    q, k, v = qkv()
    rows, tokens = q.shape[0], q.shape[2]
    generator = torch.Generator().manual_seed(3)
    if mask_kind == "qwen key padding":
        mask = torch.zeros(rows, 1, tokens)
        mask[:, 0, 1:TEXT] = torch.finfo(torch.float32).min * (torch.rand(rows, TEXT - 1, generator=generator) > 0.4)
        full = mask.unsqueeze(1)
    elif mask_kind == "per-query 4-d":
        mask = -2.0 * torch.rand(1, 1, tokens, tokens, generator=generator)
        full = mask
    else:
        mask = torch.rand(rows, 1, 1, tokens, generator=generator) > 0.3
        mask[..., TEXT:] = True  # every row keeps keys to attend to
        full = torch.zeros(mask.shape).masked_fill(~mask, -math.inf)
    layout = layout_for()
    override = make_override(logit_shift=math.log(strength))
    options = {"block_type": "single", "block_index": 0, CALL_LAYOUT_KEY: layout}
    if mask_kind == "qwen key padding":  # by position, as Qwen-Image calls optimized_attention_masked
        out = override(sdpa_backend(override.calls), q, k, v, HEADS, mask, skip_reshape=True, skip_output_reshape=True, transformer_options=options)
    else:
        out = override(sdpa_backend(override.calls), q, k, v, HEADS, mask=mask, skip_reshape=True, skip_output_reshape=True, transformer_options=options)
    assert layout.shared_calls == 1
    expected = independent_masked_sharing(q, k, v, full, layout, logit_shift=math.log(strength))
    torch.testing.assert_close(out.double(), expected, atol=1e-5, rtol=0)
    # The mask was used: without it the outputs differ.
    unmasked = call(make_override(logit_shift=math.log(strength)), q, k, v, layout_for(), skip_output_reshape=True)
    assert (unmasked - out).abs().max() > 1e-3
