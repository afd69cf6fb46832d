"""Qwen-Image against the independent implementation (tests/host/dit_oracle.py): [text, image, edit
latents], centred image ids (0, row - h/2, col - w/2), the shifted copy one width to the right, lambda 1.1
on every block; edit latents are neither normalised nor shared."""

import pytest

from host.dit_oracle import (
    GRID, IMAGE_TOKENS, check_image_rope, check_one_forward, conds, independent_attention, max_diff, one_forward,
    own_rope, grid_ids, table_cos_sin,
)
from host.sampling import sample
from host.tiny_dit_models import TEXT_TOKENS, dit_noise, tiny_dit

KEY_SCALE = 1.1
SHARED_PER_FORWARD = 2  # both blocks


@pytest.fixture(scope="module")
def kind(pack):
    return "qwen_image"


def install_independent(patch, kind, dm, images_per_chunk, reference_index, key_scale, blocks="auto"):
    import comfy.ldm.qwen_image.model as host

    seen = {"shared": 0, "calls": 0}
    state = {}
    common = dict(images_per_chunk=images_per_chunk, reference_index=reference_index, key_scale=key_scale)

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
    return seen


def test_one_forward_matches_independent_implementation(model, kind, monkeypatch):
    check_one_forward(model, kind, monkeypatch, install_independent, KEY_SCALE, SHARED_PER_FORWARD)


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
    install_independent(monkeypatch, "qwen_image", model.model.diffusion_model, 3, 0, KEY_SCALE)
    import comfy.ldm.qwen_image.model as host

    independent_call = host.optimized_attention_masked
    monkeypatch.setattr(host, "optimized_attention_masked", lambda q, *a, **k: tokens.append(q.shape[2]) or independent_call(q, *a, **k))
    independent = sample(model, noise, positive, negative, cfg=3.0, steps=1)
    monkeypatch.undo()
    assert set(tokens) == {TEXT_TOKENS + 2 * IMAGE_TOKENS}
    assert max_diff(patched, independent) < 1e-4
