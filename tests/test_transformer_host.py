"""StyleAlignedPatch on transformer models (Flux, Chroma): tiny random models from the host's classes, real sampler.
This is the Flux family's own test file (the per-family oracle; the generic invariants every family gets
are in test_dit_families_host.py).

The equations are checked against an independent implementation of AlignedGen written here (RoPE, AdaIN
from tests/host/dit_oracle.py): it replaces
the host's Flux attention function (which receives q/k before RoPE, and the model's pe) and follows the
published order directly: AdaIN on the pre-RoPE image tokens, RoPE, the reference's image keys rotated at
ids shifted by the image width (own RoPE maths), times lambda, one attention call with a mask that keeps
the reference on its own tokens. The pack instead undoes/redoes rotations inside the attention override
and makes separate backend calls: the two must agree.
"""

import math

import pytest
import torch

from host.dit_oracle import REFERENCE_TOLERANCE, adain, conds, max_diff, own_rope, rotate_pairs
from host.sampling import sample, split_chunk_wrapper, style_aligned
from host.tiny_dit_models import TEXT_TOKENS, TINY_DITS, dit_noise, tiny_dit

KINDS = ["flux", "chroma"]
LATENT = 8  # 8x8 latent -> 4x4 image tokens at patch 2
LAMBDA = 1.1


@pytest.fixture(scope="module", params=KINDS)
def kind(request, pack):
    return request.param


# ---- the independent implementation ------------------------------------------------------------------

def alignedgen_attention(params, images_per_chunk, reference_index, image_grid, text_tokens=TEXT_TOKENS, id_offsets=(0.0, 0.0, 0.0)):
    """An attention(q, k, v, pe, mask, transformer_options) for flux/layers.py, AlignedGen in single blocks.
    id_offsets: (index, row, col) the model adds to its image ids (LongCat-Image: 1, text length, text length)."""
    import comfy.ldm.flux.math

    original = comfy.ldm.flux.math.attention
    h_len, w_len = image_grid
    rows_ = torch.arange(h_len).repeat_interleave(w_len).float()
    cols_ = torch.arange(w_len).repeat(h_len).float()
    # Image ids (0, row, col[, 0]); the shifted copy moves col by the width in tokens.
    plain_ids = torch.zeros(h_len * w_len, len(params.axes_dim))
    plain_ids[:, 0], plain_ids[:, 1], plain_ids[:, 2] = id_offsets[0], rows_ + id_offsets[1], cols_ + id_offsets[2]
    shifted_ids = plain_ids.clone()
    shifted_ids[:, 2] += w_len
    shifted_cos, shifted_sin = own_rope(shifted_ids, params.axes_dim, params.theta)
    plain_cos, plain_sin = own_rope(plain_ids, params.axes_dim, params.theta)
    seen = {"shared": 0}

    def attention(q, k, v, pe, mask=None, transformer_options={}):
        if transformer_options.get("block_type") != "single":
            return original(q, k, v, pe=pe, mask=mask, transformer_options=transformer_options)
        seen["shared"] += 1
        rows, heads, tokens, dim = q.shape
        seen["tokens"] = tokens
        image = slice(text_tokens, text_tokens + h_len * w_len)
        # The model's pe on the image tokens is what our own RoPE gives at unshifted ids.
        pe_image = pe[0, 0, image]
        torch.testing.assert_close(pe_image[..., 0, 0], plain_cos, atol=1e-6, rtol=0)
        torch.testing.assert_close(pe_image[..., 1, 0], plain_sin, atol=1e-6, rtol=0)
        chunks = len(transformer_options["cond_or_uncond"])
        assert rows == chunks * images_per_chunk
        q, k = q.clone(), k.clone()
        for chunk in range(chunks):
            ref = chunk * images_per_chunk + reference_index
            for row in range(chunk * images_per_chunk, (chunk + 1) * images_per_chunk):
                if row != ref:
                    q[row, :, image] = adain(q[row, :, image], q[ref, :, image]).to(q.dtype)
                    k[row, :, image] = adain(k[row, :, image], k[ref, :, image]).to(k.dtype)
        q_rot, k_rot = comfy.ldm.flux.math.apply_rope(q, k, pe)
        reference_rows = [chunk * images_per_chunk + reference_index for chunk in range(chunks) for _ in range(images_per_chunk)]
        ref_keys = rotate_pairs(k[reference_rows][:, :, image], shifted_cos, shifted_sin) * LAMBDA
        ref_values = v[reference_rows][:, :, image]
        keys = torch.cat([k_rot.float(), ref_keys], dim=2)
        values = torch.cat([v.float(), ref_values.float()], dim=2)
        bias = torch.zeros(rows, 1, 1, keys.shape[2])
        for chunk in range(chunks):
            bias[chunk * images_per_chunk + reference_index, ..., tokens:] = -math.inf
        out = torch.nn.functional.scaled_dot_product_attention(q_rot.float(), keys, values, attn_mask=bias)
        return out.transpose(1, 2).reshape(rows, tokens, heads * dim).to(q.dtype)

    return attention, seen


def record_chunks(model, seen_orders):
    def wrapper(apply_model, args):
        seen_orders.append(list(args["cond_or_uncond"]))
        return apply_model(args["input"], args["timestep"], **args["c"])

    recorded = model.clone()
    recorded.set_model_unet_function_wrapper(wrapper)
    return recorded


def check_one_forward(model, kind, positive, negative, noise, extra_tokens=0):
    """One forward (a single Euler step at cfg 3: one model call with both chunks, [uncond, cond]) of the
    patched model equals the unpatched model running the independent AlignedGen attention."""
    import comfy.ldm.flux.layers

    orders = []
    patched = sample(record_chunks(style_aligned(model), orders), noise, positive, negative, cfg=3.0, steps=1)
    assert orders == [[1, 0]]
    params = model.model.diffusion_model.params
    attention, seen = alignedgen_attention(params, noise.shape[0], 0, (LATENT // 2, LATENT // 2))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(comfy.ldm.flux.layers, "attention", attention)
        independent = sample(model, noise, positive, negative, cfg=3.0, steps=1)
    assert seen["shared"] == TINY_DITS[kind].unet_config["depth_single_blocks"]
    assert seen["tokens"] == TEXT_TOKENS + (LATENT // 2) ** 2 + extra_tokens
    plain = sample(model, noise, positive, negative, cfg=3.0, steps=1)
    assert max_diff(patched[1:], plain[1:]) > 1e-2  # the comparison is not between two unpatched runs
    assert max_diff(patched, independent) < 1e-4


def test_one_forward_matches_independent_alignedgen(model, kind):
    positive, negative = conds(kind)
    check_one_forward(model, kind, positive, negative, dit_noise(kind, 3, seed=3))


def test_kontext_tokens_are_not_shared_or_normalised(pack):
    """Flux Kontext: reference latents become extra tokens after the image; the independent implementation
    leaves them alone (they are neither normalised nor appended), and so must the pack."""
    model = tiny_dit("flux")
    positive, negative = conds("flux")
    latent = dit_noise("flux", 1, seed=42)
    positive = [[positive[0][0], dict(positive[0][1], reference_latents=[latent])]]
    negative = [[negative[0][0], dict(negative[0][1], reference_latents=[latent])]]
    check_one_forward(model, "flux", positive, negative, dit_noise("flux", 3, seed=3), extra_tokens=(LATENT // 2) ** 2)


def test_reference_index_matches_independent(model, kind, monkeypatch):
    import comfy.ldm.flux.layers

    positive, negative = conds(kind)
    noise = dit_noise(kind, 4, seed=4)
    patched = sample(style_aligned(model, reference_index=2), noise, positive, negative, cfg=1.0, steps=1)
    attention, _ = alignedgen_attention(model.model.diffusion_model.params, 4, 2, (LATENT // 2, LATENT // 2))
    monkeypatch.setattr(comfy.ldm.flux.layers, "attention", attention)
    independent = sample(model, noise, positive, negative, cfg=1.0, steps=1)
    monkeypatch.undo()
    assert max_diff(patched, independent) < 1e-4


def test_flux2_matches_independent_and_keeps_reference(pack, monkeypatch):
    """Flux.2: four RoPE axes, patch 1, text padded to 512 by the model; the same equations."""
    import comfy.ldm.flux.layers

    model = tiny_dit("flux2")
    positive, negative = conds("flux2")
    noise = dit_noise("flux2", 3, seed=5, size=4)
    plain = sample(model, noise, positive, negative, cfg=3.0, steps=1)
    patched = sample(style_aligned(model), noise, positive, negative, cfg=3.0, steps=1)
    attention, seen = alignedgen_attention(model.model.diffusion_model.params, 3, 0, (4, 4), text_tokens=512)
    monkeypatch.setattr(comfy.ldm.flux.layers, "attention", attention)
    independent = sample(model, noise, positive, negative, cfg=3.0, steps=1)
    monkeypatch.undo()
    assert seen["shared"] == 2
    assert max_diff(patched[0], plain[0]) < REFERENCE_TOLERANCE and max_diff(patched[1:], plain[1:]) > 1e-3
    assert max_diff(patched, independent) < 1e-4


# ---- invariants through the real sampler -----------------------------------------------------------

@pytest.mark.parametrize("cfg", [1.0, 3.0])
def test_reference_unchanged_targets_styled(model, kind, cfg):
    positive, negative = conds(kind)
    noise = dit_noise(kind, 4)
    plain = sample(model, noise, positive, negative, cfg=cfg, steps=3)
    aligned = sample(style_aligned(model), noise, positive, negative, cfg=cfg, steps=3)
    assert aligned.isfinite().all()
    assert max_diff(aligned[0], plain[0]) < REFERENCE_TOLERANCE
    scale = plain.abs().mean().item()
    for target in range(1, 4):
        assert max_diff(aligned[target], plain[target]) > 0.05 * scale


def test_any_reference_index(model, kind):
    positive, negative = conds(kind)
    noise = dit_noise(kind, 3, seed=3)
    plain = sample(model, noise, positive, negative, steps=3)
    aligned = sample(style_aligned(model, reference_index=2), noise, positive, negative, steps=3)
    assert max_diff(aligned[2], plain[2]) < REFERENCE_TOLERANCE
    assert min(max_diff(aligned[i], plain[i]) for i in (0, 1)) > 0.05 * plain.abs().mean().item()


def test_no_leakage_between_targets(model, kind):
    positive, negative = conds(kind)
    patched = style_aligned(model)
    noise = dit_noise(kind, 4)
    changed = noise.clone()
    changed[2] = dit_noise(kind, 1, seed=99)[0]
    first = sample(patched, noise, positive, negative, steps=3)
    second = sample(patched, changed, positive, negative, steps=3)
    assert max_diff(first[2], second[2]) > 0.1
    for untouched in (0, 1, 3):
        assert max_diff(first[untouched], second[untouched]) < 1e-5


def test_separate_cond_and_uncond_calls_give_same_images(model, kind):
    positive, negative = conds(kind)
    noise = dit_noise(kind, 3, seed=5)
    batched = sample(style_aligned(model), noise, positive, negative, steps=3)
    splitting = model.clone()
    calls = []
    splitting.set_model_unet_function_wrapper(split_chunk_wrapper(calls))
    split = sample(style_aligned(splitting), noise, positive, negative, steps=3)
    assert calls and set(calls) == {1}
    assert max_diff(batched, split) < 1e-5 * batched.abs().max().item()


def test_loaded_model_is_untouched(model, kind):
    positive, negative = conds(kind)
    noise = dit_noise(kind, 3, seed=7)
    before = sample(model, noise, positive, negative, steps=2)
    options_before = repr(model.model_options)
    wrappers_before = repr(model.wrappers)
    state_before = {name: tensor.clone() for name, tensor in model.model.state_dict().items()}
    for strength in (1.0, 2.0):
        sample(style_aligned(model, reference_strength=strength, adain_values=True), noise, positive, negative, steps=2)
    after = sample(model, noise, positive, negative, steps=2)
    assert torch.equal(before, after)
    assert repr(model.model_options) == options_before and repr(model.wrappers) == wrappers_before
    state_after = model.model.state_dict()
    assert state_after.keys() == state_before.keys()
    assert all(torch.equal(state_before[name], state_after[name]) for name in state_before)


def test_previous_attention_override_still_called(model, kind):
    positive, negative = conds(kind)
    noise = dit_noise(kind, 3, seed=8)
    calls = []

    def counting_override(backend, *args, **kwargs):
        calls.append(args[0].shape[0])
        return backend(*args, **kwargs)

    counted = model.clone()
    counted.model_options.setdefault("transformer_options", {})["optimized_attention_override"] = counting_override
    plain_calls = []
    sample(counted, noise, positive, negative, steps=1)
    plain_calls, calls[:] = list(calls), []
    plain = sample(model, noise, positive, negative, steps=1)
    aligned = sample(style_aligned(counted), noise, positive, negative, steps=1)
    params = TINY_DITS[kind].unet_config
    # Every unshared call once with all rows; every shared (single) block twice: targets, then reference.
    assert len(plain_calls) == params["depth"] + params["depth_single_blocks"]
    assert len(calls) == params["depth"] + 2 * params["depth_single_blocks"]
    assert sorted(set(calls)) == [2, 4, 6]
    assert max_diff(aligned[0], plain[0]) < REFERENCE_TOLERANCE


def test_reference_strength_and_options_change_targets_only(model, kind):
    positive, negative = conds(kind)
    noise = dit_noise(kind, 3, seed=9)
    default = sample(style_aligned(model), noise, positive, negative, steps=2)
    for inputs in (
        {"reference_strength": 3.0},
        {"shift_reference_positions": False},
        {"reference_key_scale": 1.0},
        {"transformer_blocks": "all"},
        {"adain_values": True},
        {"share_attention": False},
        {"adain_queries": False, "adain_keys": False},
        {"shared_layer_fraction": 0.5},
    ):
        varied = sample(style_aligned(model, **inputs), noise, positive, negative, steps=2)
        assert max_diff(varied[0], default[0]) < REFERENCE_TOLERANCE, inputs
        assert max_diff(varied[1:], default[1:]) > 1e-4, inputs


def test_no_shared_block_or_empty_window_is_unpatched(model, kind):
    positive, negative = conds(kind)
    noise = dit_noise(kind, 3, seed=10)
    plain = sample(model, noise, positive, negative, steps=3)
    for inputs in ({"shared_layer_fraction": 0.0}, {"start_percent": 0.999, "end_percent": 0.999}):
        out = sample(style_aligned(model, **inputs), noise, positive, negative, steps=3)
        torch.testing.assert_close(out, plain, atol=1e-6, rtol=0)
    late = sample(style_aligned(model, start_percent=0.5), noise, positive, negative, steps=3)
    full = sample(style_aligned(model), noise, positive, negative, steps=3)
    # Sharing in the last steps only: a smaller change than over the whole schedule, but one.
    assert max_diff(late[1:], full[1:]) > 1e-3 and max_diff(late[1:], plain[1:]) > 1e-4


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_has_no_nan(kind, dtype):
    model = tiny_dit(kind, dtype=dtype)
    positive, negative = conds(kind)
    noise = dit_noise(kind, 3, seed=11)
    plain = sample(model, noise, positive, negative, steps=2)
    aligned = sample(style_aligned(model), noise, positive, negative, steps=2)
    assert aligned.isfinite().all()
    assert max_diff(aligned[0], plain[0]) < REFERENCE_TOLERANCE
    # Constant latents: constant image tokens, zero variance.
    constant = torch.zeros_like(noise)
    assert sample(style_aligned(model), constant, positive, negative, steps=1).isfinite().all()


@pytest.mark.parametrize("cfg", [1.0, 3.0])
def test_batch_of_one_is_an_error(model, kind, error_type, cfg):
    positive, negative = conds(kind)
    with pytest.raises(error_type) as error:
        sample(style_aligned(model), dit_noise(kind, 1), positive, negative, cfg=cfg, steps=1)
    assert "StyleAlignedPatch" in str(error.value) and "at least 2" in str(error.value)


def test_per_image_conditioning_batch(model, kind):
    positive, negative = conds(kind, batch=3)
    noise = dit_noise(kind, 3, seed=12)
    plain = sample(model, noise, positive, negative, steps=2)
    aligned = sample(style_aligned(model), noise, positive, negative, steps=2)
    assert max_diff(aligned[0], plain[0]) < REFERENCE_TOLERANCE


def test_attention_mask_calls_are_shared_with_the_mask_kept(pack):
    """An attention mask (Flux's attention_mask conditioning, (queries, keys)) keeps covering each row's own
    keys; the appended reference keys are never masked: the reference comes out as the masked model's
    without the pack, the targets are styled."""
    model = tiny_dit("flux")
    positive, negative = conds("flux")
    tokens = TEXT_TOKENS + (LATENT // 2) ** 2
    mask = torch.zeros(1, tokens, tokens)
    mask[..., :2] = -1.0  # a real (non-zero) additive mask
    masked = [[c, dict(extras, attention_mask=mask, attention_mask_img_shape=(LATENT // 2, LATENT // 2))] for c, extras in positive]
    noise = dit_noise("flux", 3, seed=13)
    plain = sample(model, noise, masked, negative, cfg=1.0, steps=2)
    aligned = sample(style_aligned(model), noise, masked, negative, cfg=1.0, steps=2)
    assert max_diff(aligned[0], plain[0]) < REFERENCE_TOLERANCE
    assert max_diff(aligned[1:], plain[1:]) > 1e-2
    assert max_diff(plain, sample(model, noise, positive, negative, cfg=1.0, steps=2)) > 1e-4  # the mask was used


def test_a_second_patch_replaces_the_first(model, kind):
    positive, negative = conds(kind)
    noise = dit_noise(kind, 3, seed=14)
    twice = sample(style_aligned(style_aligned(model, reference_index=1), reference_index=2), noise, positive, negative, steps=2)
    once = sample(style_aligned(model, reference_index=2), noise, positive, negative, steps=2)
    assert torch.equal(twice, once)


def test_an_override_replaced_without_chaining_is_put_back_in_front(model, kind):
    """A later node replaced the override slot without chaining (as ModelAttentionBackend does): for each
    model call the pack's override goes in front of it and calls it as its backend, so both stay."""
    positive, negative = conds(kind)
    noise = dit_noise(kind, 3, seed=16)
    calls = []
    replaced = style_aligned(model).clone()
    replaced.model_options["transformer_options"]["optimized_attention_override"] = (
        lambda backend, *a, **k: calls.append(a[0].shape[0]) or backend(*a, **k))
    aligned = sample(replaced, noise, positive, negative, steps=1)
    assert calls and torch.equal(aligned, sample(style_aligned(model), noise, positive, negative, steps=1))
    assert {2, 4} <= set(calls)  # it ran for the reference rows (2 chunks) and the target rows


def test_replaced_attention_blocks_are_an_error(model, kind, error_type):
    """Another node replaced every shared block (patches_replace) so the override is never reached."""
    positive, negative = conds(kind)
    replaced = style_aligned(model).clone()
    for index in range(TINY_DITS[kind].unet_config["depth_single_blocks"]):
        replaced.set_model_patch_replace(lambda args, extra: {"img": args["img"]}, "dit", "single_block", index)
    with pytest.raises(error_type) as error:
        sample(replaced, dit_noise(kind, 2), positive, negative, steps=1)
    assert "StyleAlignedPatch" in str(error.value) and "attention override" in str(error.value)


def test_replaced_patch_wrapped_by_another_override_stays_inert(model, kind):
    """Another pack wrapped the first patch's override; a second StyleAlignedPatch cannot unwrap it, so
    the first override stays in the chain and must leave every call alone."""
    positive, negative = conds(kind)
    noise = dit_noise(kind, 3, seed=15)
    calls = []
    first = style_aligned(model, reference_index=1)
    wrapped = first.clone()
    options = wrapped.model_options["transformer_options"]
    inner = options["optimized_attention_override"]

    def other_pack(backend, *args, **kwargs):
        calls.append(1)
        return inner(backend, *args, **kwargs)

    options["optimized_attention_override"] = other_pack
    # The second patch shares no block, so every call reaches the first override with all rows.
    second = sample(style_aligned(wrapped, shared_layer_fraction=0.0), noise, positive, negative, steps=2)
    plain = sample(model, noise, positive, negative, steps=2)
    assert calls and torch.equal(second, plain)
