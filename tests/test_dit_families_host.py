"""StyleAlignedPatch on Qwen-Image, SD3 / SD3.5 (MMDiT-X), HiDream, Lumina 2 and Z-Image: tiny random
models from the host's classes, conditioning tensors made by hand, the host's real sampler.

The equations are checked against an independent implementation written here, per family: it replaces
the host's own RoPE call with one that records the rotation and leaves q/k as they are (so it sees them
before RoPE) and the host's attention call with the published order done directly: AdaIN of the targets'
image-token q/k to the reference's (per head and channel, over the image tokens), RoPE with the model's
table, the reference's image keys rotated at positions shifted by the image width (own RoPE maths) times
lambda and its image values appended, one attention per call with a mask keeping the reference on its own
tokens. It knows each family's token order, padding and stages from the architecture (not from the
pack): Qwen-Image [text, image]; SD3 [context, image] plus MMDiT-X's image-only call; HiDream [image,
text] with RoPE on the first half of each head; Lumina 2 / Z-Image three stages, caption and image padded
to 32 on Z-Image.
"""

import math

import pytest
import torch

from host.sampling import sample, split_chunk_wrapper, style_aligned
from host.tiny_dit_models import TEXT_TOKENS, TINY_DITS, dit_conditioning, dit_noise, tiny_dit
from test_transformer_host import adain, own_rope, rotate_pairs

KINDS = ["qwen_image", "sd3", "hidream", "lumina2", "z_image"]
GRID = 4  # 8x8 latent, patch 2: 4x4 image tokens
IMAGE_TOKENS = GRID * GRID
REFERENCE_TOLERANCE = 1e-5
DEFAULT_KEY_SCALE = {"qwen_image": 1.1, "sd3": 1.0, "hidream": 1.1, "lumina2": 1.1, "z_image": 1.1}


def max_diff(a, b):
    return (a - b).abs().max().item()


@pytest.fixture(scope="module", params=KINDS)
def kind(request, pack):
    return request.param


@pytest.fixture(scope="module")
def model(kind):
    return tiny_dit(kind)


def conds(kind, batch=1):
    return dit_conditioning(kind, batch=batch, seed=1), dit_conditioning(kind, batch=batch, seed=2)


# ---- the independent implementation -------------------------------------------------------------

def grid_ids(first, row_offset, col_offset, axes=3):
    ids = torch.zeros(IMAGE_TOKENS, axes)
    ids[:, 0] = first
    ids[:, 1] = torch.arange(GRID).repeat_interleave(GRID).float() + row_offset
    ids[:, 2] = torch.arange(GRID).repeat(GRID).float() + col_offset
    return ids


def rope_first_channels(x, cos, sin):
    """RoPE on the first 2 * cos.shape[-1] channels of each head (all of them unless the RoPE is partial)."""
    rotated = 2 * cos.shape[-1]
    return torch.cat([rotate_pairs(x[..., :rotated], cos, sin), x[..., rotated:].float()], dim=-1)


def independent_attention(q, k, v, transformer_options, image, images_per_chunk, reference_index, key_scale,
                          rope=None, shifted_rope=None, shared=True):
    """q/k/v (B, H, L, D) before RoPE; rope / shifted_rope (cos, sin) for all L tokens / the image tokens.
    Returns (B, L, H*D)."""
    rows, heads, tokens, dim = q.shape
    chunks = len(transformer_options["cond_or_uncond"])
    assert rows == chunks * images_per_chunk
    q, k, v = q.double(), k.double(), v.double()
    references = [chunk * images_per_chunk + reference_index for chunk in range(chunks)]
    if shared:
        q, k = q.clone(), k.clone()
        for chunk, ref in enumerate(references):
            for row in range(chunk * images_per_chunk, (chunk + 1) * images_per_chunk):
                if row != ref:
                    q[row, :, image] = adain(q[row, :, image], q[ref, :, image])
                    k[row, :, image] = adain(k[row, :, image], k[ref, :, image])
    q_rot, k_rot = (x.float() if rope is None else rope_first_channels(x.float(), *rope) for x in (q, k))
    keys, values = k_rot, v.float()
    bias = torch.zeros(rows, 1, 1, tokens)
    if shared:
        reference_rows = [references[row // images_per_chunk] for row in range(rows)]
        reference_keys = k[reference_rows][:, :, image].float()
        if shifted_rope is not None:
            reference_keys = rope_first_channels(reference_keys, *shifted_rope)
        keys = torch.cat([keys, reference_keys * key_scale], dim=2)
        values = torch.cat([values, v[reference_rows][:, :, image].float()], dim=2)
        bias = torch.zeros(rows, 1, 1, keys.shape[2])
        for ref in references:
            bias[ref, ..., tokens:] = -math.inf
    out = torch.nn.functional.scaled_dot_product_attention(q_rot, keys, values, attn_mask=bias)
    return out.transpose(1, 2).reshape(rows, tokens, heads * dim)


def table_cos_sin(pe):
    """(cos, sin) of a host RoPE table (..., L, D/2, 2, 2)."""
    return pe[..., 0, 0].float(), pe[..., 1, 0].float()


def check_image_rope(pe_image, ids, axes_dim, theta):
    """The model's own rotations on the image tokens are our RoPE at the positions we expect."""
    cos, sin = own_rope(ids, axes_dim, theta)
    torch.testing.assert_close(table_cos_sin(pe_image), (cos, sin), atol=1e-5, rtol=0)


def capture_fused_rms_rope(patch, state):
    """Hosts that fuse QK RMSNorm and RoPE (ComfyUI 0.33's Lumina/Z-Image: comfy_kitchen's rms_rope and
    rms_rope1) get the same treatment as a plain apply_rope: the table is recorded and the host still
    normalises, but with the identity rotation, so the independent implementation applies RoPE itself."""
    import comfy.quant_ops

    kitchen = getattr(comfy.quant_ops, "ck", None)
    if kitchen is None or not hasattr(kitchen, "rms_rope"):
        return

    def identity_rotation(freqs):
        identity = torch.zeros_like(freqs)
        identity[..., 0, 0] = 1
        identity[..., 1, 1] = 1
        return identity

    fused_pair, fused_one = kitchen.rms_rope, kitchen.rms_rope1

    def rms_rope(xq, xk, freqs, *args, **kwargs):
        state["pe"] = freqs
        return fused_pair(xq, xk, identity_rotation(freqs), *args, **kwargs)

    def rms_rope1(x, freqs, *args, **kwargs):
        state["pe"] = freqs
        return fused_one(x, identity_rotation(freqs), *args, **kwargs)

    patch.setattr(kitchen, "rms_rope", rms_rope)
    patch.setattr(kitchen, "rms_rope1", rms_rope1)


def install_independent(patch, kind, dm, images_per_chunk, reference_index, key_scale, blocks="auto"):
    """Replace the family's RoPE and attention calls in the host by the independent implementation.
    Returns a dict counting the calls it shared."""
    seen = {"shared": 0, "calls": 0}
    state = {}
    common = dict(images_per_chunk=images_per_chunk, reference_index=reference_index, key_scale=key_scale)

    if kind == "qwen_image":
        import comfy.ldm.qwen_image.model as host

        def capture_rope(x, freqs):
            state["pe"] = freqs
            return x

        def attention(q, k, v, heads, mask=None, transformer_options={}, skip_reshape=False, **kwargs):
            assert mask is None and skip_reshape
            pe = state["pe"][0, 0]
            image = slice(TEXT_TOKENS, TEXT_TOKENS + IMAGE_TOKENS)  # [text, image, edit latents]
            # Centred image ids (0, row - h/2, col - w/2); the shifted copy one width to the right.
            check_image_rope(pe[image], grid_ids(0, -(GRID // 2), -(GRID // 2)), dm.pe_embedder.axes_dim, 10000)
            shifted = own_rope(grid_ids(0, -(GRID // 2), GRID - GRID // 2), dm.pe_embedder.axes_dim, 10000)
            seen["shared"] += 1
            return independent_attention(q, k, v, transformer_options, image, rope=table_cos_sin(pe), shifted_rope=shifted, **common)

        patch.setattr(host, "apply_rope1", capture_rope)
        patch.setattr(host, "optimized_attention_masked", attention)

    elif kind == "sd3":
        import comfy.ldm.modules.diffusionmodules.mmdit as host

        image_only_blocks = set(TINY_DITS[kind].unet_config["x_block_self_attn_layers"])
        depth = TINY_DITS[kind].unet_config["depth"]
        order = [call for block in range(depth) for call in ([(block, False)] + ([(block, True)] if block in image_only_blocks else []))]

        def attention(q, k, v, heads, transformer_options={}, **kwargs):
            block, image_only = order[seen["calls"] % len(order)]
            seen["calls"] += 1
            q, k, v = (t.reshape(t.shape[0], t.shape[1], heads, -1).transpose(1, 2) for t in (q, k, v))
            # Joint call: [context, image]; MMDiT-X's second call: the image alone.
            image = slice(0, IMAGE_TOKENS) if image_only else slice(q.shape[2] - IMAGE_TOKENS, q.shape[2])
            seen["shared"] += 1
            return independent_attention(q, k, v, transformer_options, image, **common)

        patch.setattr(host, "optimized_attention", attention)

    elif kind == "hidream":
        import comfy.ldm.hidream.model as host

        config = TINY_DITS[kind].unet_config
        single_from = config["num_layers"]

        def capture_rope(xq, xk, freqs):
            state["pe"] = freqs
            return xq, xk

        def attention(query, key, value, transformer_options={}):
            index = seen["calls"] % (config["num_layers"] + config["num_single_layers"])
            seen["calls"] += 1
            shared = index >= single_from if blocks == "auto" else True
            pe = state["pe"][0, :, 0]
            image = slice(0, IMAGE_TOKENS)  # image FIRST
            check_image_rope(pe[image], grid_ids(0, 0, 0), config["axes_dims_rope"], 10000)
            shifted = own_rope(grid_ids(0, 0, GRID), config["axes_dims_rope"], 10000)
            seen["shared"] += shared
            q, k, v = (t.transpose(1, 2) for t in (query, key, value))
            return independent_attention(q, k, v, transformer_options, image, rope=table_cos_sin(pe), shifted_rope=shifted, shared=shared, **common)

        patch.setattr(host, "apply_rope", capture_rope)
        patch.setattr(host, "attention", attention)

    else:  # lumina2, z_image
        import comfy.ldm.lumina.model as host

        config = TINY_DITS[kind].unet_config
        refiners, layers = config["n_refiner_layers"], config["n_layers"]
        multiple = config.get("pad_tokens_multiple")

        def capture_rope(xq, xk, freqs):
            state["pe"] = freqs
            return xq, xk

        def attention(q, k, v, heads, mask=None, transformer_options={}, skip_reshape=False, **kwargs):
            index = seen["calls"] % (2 * refiners + layers)
            seen["calls"] += 1
            pe = state["pe"][0, :, 0]
            if index < refiners:  # text-only context refiner: never shared
                return independent_attention(q, k, v, transformer_options, slice(0, 0), rope=table_cos_sin(pe), shared=False, **common)
            if index < 2 * refiners:  # image-only noise refiner: [image, image padding]
                image, shared = slice(0, IMAGE_TOKENS), blocks == "all"
                first = state["caption"] + 1
            else:  # main layers: [caption, caption padding, image, image padding]
                image_padded = IMAGE_TOKENS + (-IMAGE_TOKENS) % multiple if multiple else IMAGE_TOKENS
                start = q.shape[2] - image_padded
                image, shared, first = slice(start, start + IMAGE_TOKENS), True, start + 1
                assert start == state["caption"]
            check_image_rope(pe[image], grid_ids(first, 0, 0), config["axes_dims"], config["rope_theta"])
            shifted = own_rope(grid_ids(first, 0, GRID), config["axes_dims"], config["rope_theta"])
            seen["shared"] += shared
            return independent_attention(q, k, v, transformer_options, image, rope=table_cos_sin(pe), shifted_rope=shifted, shared=shared, **common)

        original_patchify = host.NextDiT.patchify_and_embed

        def patchify(self, x, cap_feats, *args, **kwargs):
            padded_caption = cap_feats.shape[1] + ((-cap_feats.shape[1]) % multiple if multiple else 0)
            state["caption"] = padded_caption
            return original_patchify(self, x, cap_feats, *args, **kwargs)

        patch.setattr(host.NextDiT, "patchify_and_embed", patchify)
        patch.setattr(host, "apply_rope", capture_rope)
        capture_fused_rms_rope(patch, state)
        patch.setattr(host, "optimized_attention_masked", attention)
    return seen


EXPECTED_SHARED_PER_FORWARD = {  # default blocks
    "qwen_image": 2,  # both blocks
    "sd3": 3,  # two joint calls + MMDiT-X's image-only call in block 1
    "hidream": 2,  # the single-stream blocks
    "lumina2": 2,  # main layers only
    "z_image": 2,
}


def one_forward(model, noise, positive, negative, **inputs):
    return sample(style_aligned(model, **inputs), noise, positive, negative, cfg=3.0, steps=1)


def test_one_forward_matches_independent_implementation(model, kind, monkeypatch):
    """One Euler step at cfg 3: one model call with both chunks ([uncond, cond])."""
    positive, negative = conds(kind)
    noise = dit_noise(kind, 3, seed=3)
    patched = one_forward(model, noise, positive, negative)
    plain = sample(model, noise, positive, negative, cfg=3.0, steps=1)
    seen = install_independent(monkeypatch, kind, model.model.diffusion_model, 3, 0, DEFAULT_KEY_SCALE[kind])
    independent = sample(model, noise, positive, negative, cfg=3.0, steps=1)
    monkeypatch.undo()
    assert seen["shared"] == EXPECTED_SHARED_PER_FORWARD[kind]
    assert max_diff(patched[0], plain[0]) < REFERENCE_TOLERANCE
    assert max_diff(patched[1:], plain[1:]) > 1e-2  # the comparison is not between two unpatched runs
    assert max_diff(patched, independent) < 1e-4


def test_qwen_image_edit_latents_are_not_shared_or_normalised(pack, monkeypatch):
    """Qwen-Image-Edit: reference latents become tokens after the image; the independent implementation
    leaves them alone (neither normalised nor appended), and so must the pack."""
    model = tiny_dit("qwen_image")
    positive, negative = conds("qwen_image")
    edit = dit_noise("qwen_image", 1, seed=42)
    positive, negative = ([[c, dict(extras, reference_latents=[edit])] for c, extras in cond] for cond in (positive, negative))
    noise = dit_noise("qwen_image", 3, seed=3)
    patched = one_forward(model, noise, positive, negative)
    tokens = []
    install_independent(monkeypatch, "qwen_image", model.model.diffusion_model, 3, 0, DEFAULT_KEY_SCALE["qwen_image"])
    import comfy.ldm.qwen_image.model as host

    independent_call = host.optimized_attention_masked
    monkeypatch.setattr(host, "optimized_attention_masked", lambda q, *a, **k: tokens.append(q.shape[2]) or independent_call(q, *a, **k))
    independent = sample(model, noise, positive, negative, cfg=3.0, steps=1)
    monkeypatch.undo()
    assert set(tokens) == {TEXT_TOKENS + 2 * IMAGE_TOKENS}
    assert max_diff(patched, independent) < 1e-4


def test_skipped_block_shifts_the_count_safely(pack):
    """SD3's blocks are recognised by counting attention calls. A node that skips a block (skip-layer
    guidance replaces blocks through patches_replace) shifts the count: calls whose length does not match
    the plan (here MMDiT-X's image-only call read as a joint one) pass through, nothing fails and the
    reference stays as without the pack."""
    model = tiny_dit("sd3").clone()

    def skip_block(args, extra):
        return {"img": args["img"], "txt": args["txt"]}

    model.set_model_patch_replace(skip_block, "dit", "double_block", 0)
    positive, negative = conds("sd3")
    noise = dit_noise("sd3", 3, seed=6)
    patched = style_aligned(model)
    plain = sample(model, noise, positive, negative, steps=2)
    aligned = sample(patched, noise, positive, negative, steps=2)
    assert aligned.isfinite().all()
    assert max_diff(aligned[0], plain[0]) < REFERENCE_TOLERANCE
    assert max_diff(aligned[1:], plain[1:]) > 1e-3  # block 1's joint call (read as block 0's) still shares


@pytest.mark.parametrize("kind_", ["z_image", "hidream"])
def test_all_blocks_match_independent(kind_, pack, monkeypatch):
    """transformer_blocks "all": Z-Image's image-only noise refiner (image at 0, padded to 32) and HiDream's
    double blocks ([image, text]) share too."""
    model = tiny_dit(kind_)
    positive, negative = conds(kind_)
    noise = dit_noise(kind_, 3, seed=4)
    patched = one_forward(model, noise, positive, negative, transformer_blocks="all", reference_index=1)
    seen = install_independent(monkeypatch, kind_, model.model.diffusion_model, 3, 1, DEFAULT_KEY_SCALE[kind_], blocks="all")
    independent = sample(model, noise, positive, negative, cfg=3.0, steps=1)
    monkeypatch.undo()
    assert seen["shared"] == 3
    assert max_diff(patched, independent) < 1e-4


def test_reference_unchanged_targets_styled_no_leakage(model, kind):
    positive, negative = conds(kind)
    noise = dit_noise(kind, 4)
    patched = style_aligned(model)
    plain = sample(model, noise, positive, negative, cfg=3.0, steps=3)
    aligned = sample(patched, noise, positive, negative, cfg=3.0, steps=3)
    assert aligned.isfinite().all()
    assert max_diff(aligned[0], plain[0]) < REFERENCE_TOLERANCE
    scale = plain.abs().mean().item()
    for target in range(1, 4):
        assert max_diff(aligned[target], plain[target]) > 0.02 * scale
    changed = noise.clone()
    changed[2] = dit_noise(kind, 1, seed=99)[0]
    second = sample(patched, changed, positive, negative, cfg=3.0, steps=3)
    assert max_diff(aligned[2], second[2]) > 0.1
    for untouched in (0, 1, 3):
        assert max_diff(aligned[untouched], second[untouched]) < 1e-5


@pytest.mark.parametrize("kind_", ["qwen_image", "z_image"])
def test_cfg1_split_calls_reference_index_model_untouched(kind_, pack):
    model = tiny_dit(kind_)
    positive, negative = conds(kind_)
    noise = dit_noise(kind_, 3, seed=5)
    state_before = {name: tensor.clone() for name, tensor in model.model.state_dict().items()}
    options_before = repr(model.model_options)

    plain_cfg1 = sample(model, noise, positive, negative, cfg=1.0, steps=2)
    aligned_cfg1 = sample(style_aligned(model, reference_index=2), noise, positive, negative, cfg=1.0, steps=2)
    assert max_diff(aligned_cfg1[2], plain_cfg1[2]) < REFERENCE_TOLERANCE
    assert min(max_diff(aligned_cfg1[i], plain_cfg1[i]) for i in (0, 1)) > 1e-3

    batched = sample(style_aligned(model, reference_index=1), noise, positive, negative, steps=2)
    splitting = model.clone()
    calls = []
    splitting.set_model_unet_function_wrapper(split_chunk_wrapper(calls))
    split = sample(style_aligned(splitting, reference_index=1), noise, positive, negative, steps=2)
    assert calls and set(calls) == {1}
    assert max_diff(batched, split) < 1e-5 * batched.abs().max().item()

    assert torch.equal(sample(model, noise, positive, negative, cfg=1.0, steps=2), plain_cfg1)
    assert repr(model.model_options) == options_before
    assert all(torch.equal(state_before[name], tensor) for name, tensor in model.model.state_dict().items())


@pytest.mark.parametrize("kind_", ["sd3", "z_image"])
def test_bfloat16_has_no_nan_and_keeps_the_reference(kind_, pack):
    model = tiny_dit(kind_, dtype=torch.bfloat16)
    positive, negative = conds(kind_)
    noise = dit_noise(kind_, 3, seed=11)
    plain = sample(model, noise, positive, negative, steps=2)
    aligned = sample(style_aligned(model), noise, positive, negative, steps=2)
    assert aligned.isfinite().all() and max_diff(aligned[0], plain[0]) < REFERENCE_TOLERANCE
    assert sample(style_aligned(model), torch.zeros_like(noise), positive, negative, steps=1).isfinite().all()


def test_hidream_e1_editing_is_refused(pack, error_type):
    """HiDream E1 puts the edited image beside the latent: the image tokens are not one range."""
    model = tiny_dit("hidream")
    positive, negative = conds("hidream")
    edit = dit_noise("hidream", 1, seed=7)
    positive = [[c, dict(extras, concat_latent_image=edit)] for c, extras in positive]
    with pytest.raises(error_type) as error:
        sample(style_aligned(model), dit_noise("hidream", 2), positive, negative, cfg=1.0, steps=1)
    assert "StyleAlignedPatch" in str(error.value) and "HiDream E1" in str(error.value)


def test_video_family_is_refused_at_the_node(pack, error_type):
    with pytest.raises(error_type) as error:
        style_aligned(tiny_dit("wan21"))
    message = str(error.value)
    assert "StyleAlignedPatch" in message and "WAN21" in message and "not supported" in message
