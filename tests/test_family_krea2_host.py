"""Krea 2 (ComfyUI 0.33+): one forward of the patched tiny model equals an independent implementation of
the equations, and the host's pre-RoPE hook (with grouped K/V heads) gives the images of the override path.

The independent implementation (host/dit_oracle.py) knows Krea 2 from its architecture, not from the pack:
one stream of single blocks over [text, image, edit references]; RoPE (3 axes, theta 1000) applied by the
block before the K/V heads are repeated; text ids 0, image ids (0, row, col). It replaces the block's RoPE
call with one that records the table and leaves q/k unrotated, and its attention call with the published
order: AdaIN of the targets' image q/k to the reference's, RoPE, the reference's image keys rotated at
columns shifted by the image width (own RoPE maths) times lambda and its image values appended, the
reference masked to its own tokens. The text-fusion adapter's attention (no block tags) is plain attention.
"""

import pytest
import torch

from host.dit_oracle import (
    check_all_blocks, check_image_rope, check_one_forward, check_tokens_after_the_image_left_alone, conds,
    IMAGE_TOKENS, grid_ids, independent_attention, max_diff, own_rope, table_cos_sin,
)
from host.sampling import sample, style_aligned
from host.tiny_dit_models import TEXT_TOKENS, dit_noise, host_lacks
from test_pre_rope_hook_host import with_attn1_patches

KIND = "krea2"
LAMBDA = 1.1  # the family's "auto" (ours)


@pytest.fixture(scope="module")
def kind(pack):
    if host_lacks(KIND):
        pytest.skip(host_lacks(KIND))
    return KIND



def install_independent(patch, kind, dm, images_per_chunk, reference_index, key_scale, blocks="auto"):
    import comfy.ldm.krea2.model as host

    axes, theta = dm.pe_embedder.axes_dim, dm.pe_embedder.theta
    state, seen = {}, {"shared": 0, "tokens": set()}

    def capture_rope(q, k, freqs):
        state["pe"] = freqs
        return q, k

    def attention(q, k, v, heads, mask=None, transformer_options={}, skip_reshape=False, **kwargs):
        assert mask is None and skip_reshape
        if transformer_options.get("block_type") != "single":  # the text-fusion adapter
            out = torch.nn.functional.scaled_dot_product_attention(q, k, v)
            return out.transpose(1, 2).reshape(q.shape[0], q.shape[2], -1)
        pe = state.pop("pe")[0, 0]
        image = slice(TEXT_TOKENS, TEXT_TOKENS + IMAGE_TOKENS)  # [text, image, edit references]
        check_image_rope(pe[image], grid_ids(0, 0, 0), axes, theta)
        seen["shared"] += 1
        seen["tokens"].add(q.shape[2])
        return independent_attention(
            q, k, v, transformer_options, image, images_per_chunk, reference_index, key_scale,
            rope=table_cos_sin(pe), shifted_rope=own_rope(grid_ids(0, 0, 4), axes, theta),
        )

    patch.setattr(host, "apply_rope", capture_rope)
    patch.setattr(host, "optimized_attention_masked", attention)
    return seen


def test_one_forward_matches_independent_implementation(model, monkeypatch):
    check_one_forward(model, KIND, monkeypatch, install_independent, LAMBDA, len(model.model.diffusion_model.blocks))


def test_reference_index_1_matches_independent(model, monkeypatch):
    check_all_blocks(KIND, monkeypatch, install_independent, LAMBDA, len(model.model.diffusion_model.blocks))


def test_edit_references_are_not_shared_or_normalised(model, monkeypatch):
    """Krea 2 edit: reference latents become tokens after the image (index 1, 2, ...); the independent
    implementation leaves them alone, and so must the pack."""
    check_tokens_after_the_image_left_alone(
        model, KIND, monkeypatch, install_independent, LAMBDA, TEXT_TOKENS + 2 * IMAGE_TOKENS,
        reference_latents=[dit_noise(KIND, 1, seed=42)], reference_latents_method="index",
    )


def test_pre_rope_hook_with_grouped_heads_gives_the_images_of_the_override_path(model):
    """0.33 calls attn1 patches inside Krea 2's attention, before RoPE, with K/V on fewer heads than q: AdaIN
    there (used) equals the override undoing and redoing RoPE around AdaIN on the repeated heads."""
    positive, negative = conds(KIND)
    noise = dit_noise(KIND, 3, seed=7)
    patched = style_aligned(model)
    (hook,) = patched.model_options["transformer_options"]["patches"]["attn1_patch"]
    ran = []

    def counted(q, k, v, **kwargs):
        out = hook(q, k, v, **kwargs)
        ran.append((bool(out), q.shape[1], k.shape[1]))
        return out

    via_hook = sample(with_attn1_patches(patched, lambda _: [counted]), noise, positive, negative, steps=2)
    via_override = sample(with_attn1_patches(patched, lambda _: []), noise, positive, negative, steps=2)
    heads, kv_heads = model.model.diffusion_model.heads, model.model.diffusion_model.blocks[0].attn.kvheads
    assert kv_heads < heads and set(ran) == {(True, heads, kv_heads)}
    assert max_diff(via_hook, via_override) < 1e-5 * max(1.0, via_override.abs().max().item())


def test_frames_are_refused(model, error_type):
    positive, negative = conds(KIND)
    noise = torch.randn(2, 16, 2, 8, 8, generator=torch.Generator().manual_seed(0))
    with pytest.raises(error_type) as error:
        sample(style_aligned(model), noise, positive, negative, cfg=1.0, steps=1)
    assert "StyleAlignedPatch" in str(error.value) and "Krea 2" in str(error.value) and "frames" in str(error.value)
