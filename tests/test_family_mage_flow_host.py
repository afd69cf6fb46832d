"""MageFlow (ComfyUI 0.33+): one forward of the patched tiny model equals an independent implementation of
the equations; a masked, padded prompt changes nothing; the registry names it by its own module.

The independent implementation (host/dit_oracle.py) knows MageFlow from its architecture, not from the
pack: Qwen-Image's joint blocks over [text, image, edit references]; patch 1 (one token per latent pixel);
text ids 0 (unrotated), image ids (0, row - (h - h//2), col - (w - w//2)). It replaces the block's RoPE call
with one that records the table and leaves q/k unrotated, and its attention call with the published order:
AdaIN of the targets' image q/k to the reference's, RoPE, the reference's image keys rotated at columns
shifted by the image width (own RoPE maths) times lambda and its image values appended, the reference
masked to its own tokens.
"""

import pytest
import torch

from host.dit_oracle import (
    check_all_blocks, check_image_rope, check_one_forward, check_tokens_after_the_image_left_alone, conds,
    independent_attention, max_diff, own_rope, table_cos_sin,
)
from host.sampling import sample, style_aligned
from host.tiny_dit_models import TEXT_TOKENS, dit_noise, host_lacks
from test_text_mask_dit_host import padded

KIND = "mage_flow"
GRID = 8  # 8x8 latent at patch 1
IMAGE_TOKENS = GRID * GRID
LAMBDA = 1.1  # the family's "auto" (ours)


@pytest.fixture(scope="module")
def kind(pack):
    if host_lacks(KIND):
        pytest.skip(host_lacks(KIND))
    return KIND



def image_ids(col_offset=0.0):
    """MageFlow's centring: positions [-ceil(n/2), floor(n/2)) on rows and columns."""
    centre = GRID - GRID // 2
    ids = torch.zeros(GRID * GRID, 3)
    ids[:, 1] = torch.arange(GRID).repeat_interleave(GRID).float() - centre
    ids[:, 2] = torch.arange(GRID).repeat(GRID).float() - centre + col_offset
    return ids


def install_independent(patch, kind, dm, images_per_chunk, reference_index, key_scale, blocks="auto"):
    import comfy.ldm.qwen_image.model as host  # MageFlow's blocks are Qwen-Image's

    axes, theta = dm.pe_embedder.axes_dim, dm.pe_embedder.theta
    state, seen = {}, {"shared": 0, "tokens": set()}

    def capture_rope(x, freqs):
        state["pe"] = freqs
        return x

    def attention(q, k, v, heads, mask=None, transformer_options={}, skip_reshape=False, **kwargs):
        assert mask is None and skip_reshape
        pe = state["pe"][0, 0]
        image = slice(TEXT_TOKENS, TEXT_TOKENS + GRID * GRID)
        check_image_rope(pe[image], image_ids(), axes, theta)
        seen["shared"] += 1
        seen["tokens"].add(q.shape[2])
        return independent_attention(
            q, k, v, transformer_options, image, images_per_chunk, reference_index, key_scale,
            rope=table_cos_sin(pe), shifted_rope=own_rope(image_ids(col_offset=GRID), axes, theta),
        )

    patch.setattr(host, "apply_rope1", capture_rope)
    patch.setattr(host, "optimized_attention_masked", attention)
    return seen


def test_one_forward_matches_independent_implementation(model, monkeypatch):
    check_one_forward(model, KIND, monkeypatch, install_independent, LAMBDA, len(model.model.diffusion_model.transformer_blocks))


def test_reference_index_1_matches_independent(model, monkeypatch):
    check_all_blocks(KIND, monkeypatch, install_independent, LAMBDA, len(model.model.diffusion_model.transformer_blocks))


def test_edit_references_are_not_shared_or_normalised(model, monkeypatch):
    """MageFlow edit: reference latents become tokens after the image (index 1, 2, ...), left alone."""
    check_tokens_after_the_image_left_alone(
        model, KIND, monkeypatch, install_independent, LAMBDA, TEXT_TOKENS + 2 * IMAGE_TOKENS,
        reference_latents=[dit_noise(KIND, 1, seed=42)],
    )


def test_padded_masked_prompt_gives_the_unpadded_prompts_aligned_images(model):
    """MageFlow applies the conditioning's text attention mask (passed to attention by position): the pack
    keeps it on each row's own keys, so masked padding changes nothing."""
    positive, negative = conds(KIND)
    noise = dit_noise(KIND, 3, seed=3)
    patched = style_aligned(model)
    aligned = sample(patched, noise, positive, negative, steps=2)
    aligned_padded = sample(patched, noise, padded(positive), padded(negative), steps=2)
    plain = sample(model, noise, positive, negative, steps=2)
    assert max_diff(sample(model, noise, padded(positive), padded(negative), steps=2), plain) < 1e-4  # the host masks
    assert max_diff(aligned[1:], plain[1:]) > 1e-2 and max_diff(aligned[0], plain[0]) < 1e-5
    assert max_diff(aligned_padded, aligned) < 1e-4 * max(1.0, aligned.abs().max().item())


def test_recognised_by_its_own_module(model, pack):
    """MageFlow reuses Qwen-Image's blocks but is its own model class: the registry names it MageFlow."""
    dm = model.model.diffusion_model
    assert type(dm).__module__ == "comfy.ldm.mage_flow.model"
    family = pack.stylealign_core.transformer.family_for(dm)
    assert family.name == "MageFlow" and family().block_counts(dm) == {"double": len(dm.transformer_blocks)}
