"""Several weighted references (issue 19 A) in the core, against implementations written here from the
equations: each target attends to its own keys and every reference's keys, reference i's logits shifted by
log(strength * w_i); AdaIN to the weighted mixture's moments (w^_i = w_i / sum w: mu = sum w^_i mu_i,
var = sum w^_i (var_i + mu_i^2) - mu^2, + eps 1e-5, in float64 here); on transformers reference i's keys
at positions shifted by i * W. References see only their own keys; targets never see each other."""

import math

import pytest
import torch

from stylealign_core import PatchRuntime, ReferenceLogitShift, SharedAttentionPatch, StyleAlignedError, StyleAlignedOptions
from stylealign_core.batch_layout import BatchLayout, batch_layout
from stylealign_core.share_flags import ShareFlags
from stylealign_core.maths.reference_mixture import mixture_stats
from stylealign_core.references import ReferenceList, weighted_references
from stylealign_core.transformer import CALL_LAYOUT_KEY, CallLayout, SharedAttentionOverride, TransformerSharing
from stylealign_core.transformer.families.flux import FluxFamily
from test_core_authors_options import projections
from test_core_runtime import naive_attention

EPS = 1e-5
HEADS, DIM, TOKENS = 2, 16, 12


def listing(*pairs):
    listed = ReferenceList()
    for slot, weight in pairs:
        listed = listed.plus(slot, weight)
    return listed


def references(*pairs):
    return weighted_references(listing(*pairs), "StyleAlignedPatch")


# ---- the independent implementation (float64) -----------------------------------------------------------

def mixture_moments(tokens, slots, weights):
    """mu and var of the references' weighted mixture, per channel, from the formula as written in the issue."""
    total = sum(weights)
    means = [tokens[s].mean(-2, keepdim=True) for s in slots]
    variances = [tokens[s].var(-2, keepdim=True, unbiased=False) for s in slots]
    mu = sum(w / total * m for w, m in zip(weights, means))
    var = sum(w / total * (v + m * m) for w, v, m in zip(weights, variances, means)) - mu * mu
    return mu, var


def adain_to_mixture(x, group, slots, weights):
    mu, var = mixture_moments(group, slots, weights)
    mean, variance = x.mean(-2, keepdim=True), x.var(-2, keepdim=True, unbiased=False)
    return (x - mean) / (variance + EPS).sqrt() * (var + EPS).sqrt() + mu


def softmax_attention(q, k, v, bias=None):
    """(L, C) q, (K, C) k/v, heads split; bias (K,) added to the logits."""
    d = DIM // HEADS
    q, k, v = (t.reshape(t.shape[0], HEADS, d).transpose(0, 1) for t in (q, k, v))
    logits = q @ k.transpose(-1, -2) / math.sqrt(d)
    if bias is not None:
        logits = logits + bias
    return (logits.softmax(-1) @ v).transpose(0, 1).reshape(-1, DIM)


def unet_oracle(x, to_q, to_k, to_v, chunks, slots, weights, strength=1.0, place="inputs"):
    x = x.double()
    wq, wk, wv = (layer.weight.double() for layer in (to_q, to_k, to_v))
    images = x.shape[0] // chunks
    out = torch.empty(x.shape[0], x.shape[1], DIM, dtype=torch.float64)
    for c in range(chunks):
        group = x[c * images:(c + 1) * images]
        q, k, v = group @ wq.T, group @ wk.T, group @ wv.T
        for image in range(images):
            row = c * images + image
            if image in slots:
                out[row] = softmax_attention(q[image], k[image], v[image])
                continue
            if place == "inputs":
                normalised = adain_to_mixture(group[image], group, slots, weights)
                q_t, k_t = normalised @ wq.T, normalised @ wk.T
            else:
                q_t, k_t = adain_to_mixture(q[image], q, slots, weights), adain_to_mixture(k[image], k, slots, weights)
            keys = torch.cat([k_t] + [k[s] for s in slots])
            values = torch.cat([v[image]] + [v[s] for s in slots])
            bias = torch.cat([torch.zeros(x.shape[1], dtype=torch.float64)] + [
                torch.full((x.shape[1],), math.log(strength * w), dtype=torch.float64) for w in weights])
            out[row] = softmax_attention(q_t, keys, values, bias)
    return out


# ---- the pack's UNet path ------------------------------------------------------------------------------

def pack_attention(x, layers, chunks, options):
    """attn1 patch on the projection inputs (q = k = v = x, as the host hands them), projections, override."""
    to_q, to_k, to_v = layers
    runtime = PatchRuntime()
    patch, override = SharedAttentionPatch(options, runtime), ReferenceLogitShift(runtime)
    extra = {"cond_or_uncond": list(range(chunks)), "block": ("input", 1, 0), "block_index": 0}
    with torch.no_grad():
        q_in, k_in, v_in = patch(x, x, x, extra)
        return override(naive_attention, to_q(q_in), to_k(k_in), to_v(v_in), HEADS)


def styled_features(rows, seed):
    generator = torch.Generator().manual_seed(seed)
    scale = 1 + torch.rand(rows, 1, DIM, generator=generator) * 3
    return torch.randn(rows, TOKENS, DIM, generator=generator) * scale + torch.randn(rows, 1, DIM, generator=generator) * 2


def unet_options(pairs, place="inputs", **changes):
    chosen = references(*pairs)
    return StyleAlignedOptions(
        reference_index=chosen.slots[0], references=chosen, adain_on_projections=place == "projections", **changes)


@pytest.mark.parametrize("place", ["inputs", "projections"])
@pytest.mark.parametrize("chunks, images, pairs, strength", [
    (2, 5, ((3, 1.0), (0, 0.4)), 1.0),
    (1, 4, ((1, 2.0), (2, 0.5)), 1.0),
    (2, 6, ((0, 1.0), (5, 3.0), (2, 0.25)), 2.0),
])
def test_unet_references_equal_the_formulas(place, chunks, images, pairs, strength):
    x = styled_features(chunks * images, seed=images)
    layers = projections(images)
    got = pack_attention(x, layers, chunks, unet_options(pairs, place, reference_strength=strength))
    want = unet_oracle(x, *layers, chunks, [s for s, _ in pairs], [w for _, w in pairs], strength, place)
    assert (got.double() - want).abs().max().item() < 1e-4 * want.abs().max().item()


@pytest.mark.parametrize("place", ["inputs", "projections"])
def test_weights_one_and_zero_equal_a_single_reference_exactly(place):
    x = styled_features(8, seed=3)
    layers = projections(3)
    listed = pack_attention(x, layers, 2, unet_options(((1, 1.0), (3, 0.0)), place))
    single = pack_attention(x, layers, 2, StyleAlignedOptions(reference_index=1, adain_on_projections=place == "projections"))
    assert torch.equal(listed, single)


@pytest.mark.parametrize("place", ["inputs", "projections"])
def test_two_identical_references_with_weights_summing_to_one_equal_one_reference(place):
    x = styled_features(10, seed=4)
    x[2], x[7] = x[0], x[5]  # in each chunk of 5, slot 2 holds the same features as slot 0
    layers = projections(4)
    two = pack_attention(x, layers, 2, unet_options(((0, 0.3), (2, 0.7)), place))
    one = pack_attention(x, layers, 2, StyleAlignedOptions(reference_index=0, adain_on_projections=place == "projections"))
    targets = [1, 3, 4, 6, 8, 9]
    torch.testing.assert_close(two[targets], one[targets], atol=2e-5 * one.abs().max().item(), rtol=0)


@pytest.mark.parametrize("place", ["inputs", "projections"])
def test_references_are_unchanged_and_targets_do_not_leak(place):
    x = styled_features(8, seed=5)
    layers = projections(5)
    options = unet_options(((2, 1.0), (0, 0.6)), place, adain_values=True)
    got = pack_attention(x, layers, 2, options)
    to_q, to_k, to_v = layers
    with torch.no_grad():
        alone = naive_attention(to_q(x), to_k(x), to_v(x), HEADS)
    for row in (0, 2, 4, 6):
        torch.testing.assert_close(got[row], alone[row], atol=1e-6 * alone.abs().max().item(), rtol=0)
    changed = x.clone()
    changed[3] = styled_features(1, seed=99)[0]
    again = pack_attention(changed, layers, 2, options)
    assert (again[3] - got[3]).abs().max() > 1e-2
    assert torch.equal(again[[0, 1, 2, 4, 5, 6, 7]], got[[0, 1, 2, 4, 5, 6, 7]])


def test_tiled_queries_see_each_reference_tile():
    """HyperTile-like tiles (2 per image): tile t of a target attends to its own key chunk t and every
    reference's chunk t; logit shifts per reference; references unchanged."""
    x = styled_features(4, seed=6)
    layers = projections(6)
    to_q, to_k, to_v = layers
    options = unet_options(((0, 1.0), (1, 0.5)), "inputs", adain_queries=False, adain_keys=False)
    runtime = PatchRuntime()
    patch, override = SharedAttentionPatch(options, runtime), ReferenceLogitShift(runtime)
    tiles, half = 2, TOKENS // 2

    def tiled_attention(q, k, v, heads, mask=None, **kwargs):
        # As the host splits keys by count: q (rows * tiles, L / tiles, C), keys cut into `tiles` chunks.
        k_tiles = k.reshape(k.shape[0] * tiles, k.shape[1] // tiles, k.shape[2])
        v_tiles = v.reshape(v.shape[0] * tiles, v.shape[1] // tiles, v.shape[2])
        return naive_attention(q, k_tiles, v_tiles, heads, mask=mask)

    with torch.no_grad():
        q_in, k_in, v_in = patch(x, x, x, {"cond_or_uncond": [0], "block": ("input", 1, 0), "block_index": 0})
        q_tiles = to_q(q_in).reshape(4 * tiles, half, DIM)
        got = override(tiled_attention, q_tiles, to_k(k_in), to_v(v_in), HEADS).reshape(4, TOKENS, DIM)
        q, k, v = to_q(x).double(), to_k(x).double(), to_v(x).double()
    for image in range(4):
        for tile in range(tiles):
            part = slice(tile * half, (tile + 1) * half)
            if image in (0, 1):
                want = softmax_attention(q[image, part], k[image, part], v[image, part])
            else:
                keys = torch.cat([k[image, part], k[0, part], k[1, part]])
                values = torch.cat([v[image, part], v[0, part], v[1, part]])
                bias = torch.cat([torch.zeros(half), torch.zeros(half), torch.full((half,), math.log(0.5))]).double()
                want = softmax_attention(q[image, part], keys, values, bias)
            assert (got[image, part].double() - want).abs().max().item() < 1e-5


# ---- the mixture and the listing ----------------------------------------------------------------------

def test_mixture_moments_equal_the_formula_with_large_means():
    generator = torch.Generator().manual_seed(7)
    tokens = torch.randn(3, 64, 8, generator=generator) * torch.tensor([0.5, 2.0, 1.0])[:, None, None] + 300.0
    weights = (1.0, 2.5, 0.5)
    means = tokens.mean(1, keepdim=True)
    variances = tokens.var(1, keepdim=True, unbiased=False)
    mean, std = mixture_stats(means.unsqueeze(0), variances.unsqueeze(0), [w / sum(weights) for w in weights], axis=1)
    mu, var = mixture_moments(tokens.double(), [0, 1, 2], weights)
    torch.testing.assert_close(mean[0, 0].double(), mu, atol=1e-4, rtol=0)
    torch.testing.assert_close(std[0, 0].double(), (var + EPS).sqrt(), atol=1e-4, rtol=1e-5)


def test_listing_errors_name_the_node_and_input():
    with pytest.raises(StyleAlignedError, match="StyleAlignedReferences: slot 2 is listed twice"):
        listing((2, 1.0), (2, 0.5))
    with pytest.raises(StyleAlignedError, match="StyleAlignedPatch: references .* every weight is 0.*weight"):
        references((0, 0.0), (1, 0.0))
    chosen = references((4, 1.0), (1, 0.0), (0, 2.0))
    assert chosen.slots == (4, 0) and chosen.weights == (1.0, 2.0)
    with pytest.raises(StyleAlignedError, match="StyleAlignedReferences: slot 4 is outside the latent batch of 4"):
        batch_layout(8, [0, 1], 4, references=chosen)
    with pytest.raises(StyleAlignedError, match="StyleAlignedReferences: the latent batch has 2 images and all"):
        batch_layout(4, [0, 1], 0, references=references((0, 1.0), (1, 1.0)))
    layout = batch_layout(10, [0, 1], 4, references=chosen)
    assert layout.all_reference_rows() == [4, 0, 9, 5] and layout.target_rows() == [1, 2, 3, 6, 7, 8]
    assert layout.reference_rows() == [4, 9]


# ---- the transformer route ----------------------------------------------------------------------------

T_HEADS, T_DIM, TEXT, SIDE = 2, 8, 3, 3
IMAGE = SIDE * SIDE
LAMBDA = 1.1


def own_angles(columns: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """(L, D/2) RoPE angles, half the channel pairs on the row axis and half on the column axis."""
    half = T_DIM // 4
    omega = 1.0 / 10000.0 ** (torch.arange(0, 2 * half, 2, dtype=torch.float64) / (2 * half))
    return torch.cat([rows.double()[:, None] * omega, columns.double()[:, None] * omega], dim=-1)


def as_rotations(angle: torch.Tensor) -> torch.Tensor:
    cos, sin = angle.cos(), angle.sin()
    return torch.stack([cos, -sin, sin, cos], dim=-1).reshape(1, 1, angle.shape[0], T_DIM // 2, 2, 2).float()


def rotate_by(x, angle):
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack([angle.cos() * x0 - angle.sin() * x1, angle.sin() * x0 + angle.cos() * x1], -1).flatten(-2)


GRID_ROWS = torch.arange(SIDE).repeat_interleave(SIDE).float()
GRID_COLUMNS = torch.arange(SIDE).repeat(SIDE).float()


def transformer_layout(batch: BatchLayout) -> CallLayout:
    return CallLayout(
        batch=batch, image_start=TEXT, image_tokens=IMAGE,
        image_rotations=as_rotations(own_angles(GRID_COLUMNS, GRID_ROWS)),
        shift_rotation=as_rotations(own_angles(torch.tensor([float(SIDE)]), torch.tensor([0.0]))),
    )


def sdpa(q, k, v, heads, mask=None, skip_reshape=False, transformer_options=None, **kwargs):
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return out.transpose(1, 2).reshape(out.shape[0], out.shape[2], -1)


def run_override(q, k, v, layout, strength_shift=0.0, position_shift=True):
    sharing = TransformerSharing(
        shared_blocks=frozenset({("single", 0)}), flags=ShareFlags(True, True, False, True),
        key_scale=LAMBDA, position_shift=position_shift, logit_shift=strength_shift)
    override = SharedAttentionOverride(FluxFamily(), sharing)
    options = {"block_type": "single", "block_index": 0, CALL_LAYOUT_KEY: layout}
    return override(sdpa, q, k, v, T_HEADS, skip_reshape=True, transformer_options=options)


def transformer_oracle(q, k, v, images, slots, weights, strength=1.0, position_shift=True):
    """AlignedGen with several references, from the equations (float64): AdaIN of the targets' pre-RoPE image
    q/k to the mixture, RoPE again; keys [own ; lambda R(p + i W) k_ref_i (pre-RoPE)], logits + log(s w_i)."""
    q, k, v = q.double(), k.double(), v.double()
    image = slice(TEXT, TEXT + IMAGE)
    angle = own_angles(GRID_COLUMNS, GRID_ROWS)
    pre_q, pre_k = rotate_by(q[:, :, image], -angle), rotate_by(k[:, :, image], -angle)
    out = torch.empty(q.shape[0], q.shape[2], T_HEADS * T_DIM, dtype=torch.float64)
    for row in range(q.shape[0]):
        chunk, slot = divmod(row, images)
        base = chunk * images
        if slot in slots:
            logits = q[row] @ k[row].transpose(-1, -2) / math.sqrt(T_DIM)
            out[row] = (logits.softmax(-1) @ v[row]).transpose(0, 1).reshape(-1, T_HEADS * T_DIM)
            continue
        q_t, k_t = q[row].clone(), k[row].clone()
        group_q, group_k = pre_q[base:base + images], pre_k[base:base + images]
        q_t[:, image] = rotate_by(adain_to_mixture(pre_q[row], group_q, slots, weights), angle)
        k_t[:, image] = rotate_by(adain_to_mixture(pre_k[row], group_k, slots, weights), angle)
        keys, values, bias = [k_t], [v[row]], [torch.zeros(q.shape[2], dtype=torch.float64)]
        for i, (s, w) in enumerate(zip(slots, weights), start=1):
            shift = i * SIDE if position_shift else 0
            keys.append(LAMBDA * rotate_by(pre_k[base + s], own_angles(GRID_COLUMNS + shift, GRID_ROWS)))
            values.append(v[base + s][:, image])
            bias.append(torch.full((IMAGE,), math.log(strength * w), dtype=torch.float64))
        logits = q_t @ torch.cat(keys, dim=1).transpose(-1, -2) / math.sqrt(T_DIM) + torch.cat(bias)
        out[row] = (logits.softmax(-1) @ torch.cat(values, dim=1)).transpose(0, 1).reshape(-1, T_HEADS * T_DIM)
    return out


def transformer_qkv(rows, seed=0):
    generator = torch.Generator().manual_seed(seed)
    offsets = torch.randn(rows, 1, 1, T_DIM, generator=generator)
    return [torch.randn(rows, T_HEADS, TEXT + IMAGE + 2, T_DIM, generator=generator) * 1.5 + offsets for _ in range(3)]


@pytest.mark.parametrize("chunks, images, pairs, strength", [
    (2, 4, ((2, 1.0), (0, 0.5)), 1.0),
    (1, 5, ((0, 1.0), (3, 2.0), (1, 0.7)), 1.5),
])
def test_transformer_references_equal_the_formulas(chunks, images, pairs, strength):
    chosen = references(*pairs)
    batch = batch_layout(chunks * images, list(range(chunks)), chosen.slots[0], references=chosen)
    q, k, v = transformer_qkv(chunks * images, seed=images)
    got = run_override(q, k, v, transformer_layout(batch), math.log(strength) if strength != 1.0 else 0.0)
    want = transformer_oracle(q, k, v, images, chosen.slots, chosen.weights, strength)
    assert (got.double() - want).abs().max().item() < 1e-4 * want.abs().max().item()


def test_transformer_one_and_zero_equal_a_single_reference_exactly():
    q, k, v = transformer_qkv(6, seed=1)
    chosen = references((1, 1.0), (2, 0.0))
    listed = run_override(q, k, v, transformer_layout(batch_layout(6, [0, 1], 1, references=chosen)))
    single = run_override(q, k, v, transformer_layout(batch_layout(6, [0, 1], 1)))
    assert torch.equal(listed, single)


def test_transformer_identical_references_equal_one_without_position_shift():
    """Identical references summing to weight 1 are one reference when they sit at the same positions; with
    the shift each sits i widths away, which is what keeps several references apart."""
    q, k, v = transformer_qkv(4, seed=2)
    for t in (q, k, v):
        t[1] = t[0]
    two = run_override(q, k, v, transformer_layout(batch_layout(4, [0], 0, references=references((0, 0.4), (1, 0.6)))),
                       position_shift=False)
    one = run_override(q, k, v, transformer_layout(batch_layout(4, [0], 0)), position_shift=False)
    torch.testing.assert_close(two[2:], one[2:], atol=1e-5, rtol=0)
    shifted = run_override(q, k, v, transformer_layout(batch_layout(4, [0], 0, references=references((0, 0.4), (1, 0.6)))))
    assert (shifted[2:] - one[2:]).abs().max() > 1e-3


# ---- a set in batches ---------------------------------------------------------------------------------

@pytest.mark.parametrize("set_size, slots, per_batch", [(9, (0, 1), 4), (8, (3, 1), 5), (7, (2, 0, 5), 6), (10, (0, 4), 5)])
def test_every_batch_holds_every_reference_at_its_slot(set_size, slots, per_batch):
    from stylealign_core.sets import plan_chunks

    plan = plan_chunks(set_size, slots[0], per_batch, "StyleAlignedSplitSet", more_references=slots[1:])
    assert len(plan.chunks) > 1
    covered = set()
    for rows in plan.chunks:
        assert len(rows) <= per_batch and len(set(rows)) == len(rows)
        assert all(rows[slot] == slot for slot in slots)  # the set index is the batch slot the patch reads
        targets = [index for index in rows if index not in slots]
        assert targets == sorted(targets) and targets
        covered.update(targets)
    assert covered == set(range(set_size)) - set(slots)
    description = plan.describe()
    assert all(f"{slot} (reference {number})" in description for number, slot in enumerate(slots, start=1))


def test_split_errors_name_the_node():
    from stylealign_core.sets import plan_chunks

    with pytest.raises(StyleAlignedError, match="StyleAlignedSplitSet: images_per_batch \\(3\\) must be more than 3"):
        plan_chunks(8, 0, 3, "StyleAlignedSplitSet", more_references=(3,))
    with pytest.raises(StyleAlignedError, match="StyleAlignedSplitSet: references lists slot 9"):
        plan_chunks(8, 0, 4, "StyleAlignedSplitSet", more_references=(9,))
