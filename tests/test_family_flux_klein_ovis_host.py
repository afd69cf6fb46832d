"""Flux.2 Klein and Ovis-Image load as the Flux module (comfy.ldm.flux.model.Flux): one forward equals the
independent AlignedGen implementation Flux.1 is checked against (test_transformer_host), on their own ids.

Flux.2 Klein: four RoPE axes (index, row, col, text position), theta 2000, patch 1, text padded to 512 by
the model, text ids (0, 0, 0, i), no guidance embedding. Ovis-Image (ComfyUI 0.33): Flux.1's three axes
with text ids on the row and column axes, (0, i, i), the "yak" MLP and a text RMSNorm. In both the image
ids are (0, row, col[, 0]) and the reference's keys must land one image width to the right along the
column axis: the independent implementation rotates them at its own shifted ids and checks the model's
table on the image and text tokens against its own RoPE at the ids above.
"""

import pytest
import torch

from host.dit_oracle import max_diff, own_rope
from host.sampling import sample, style_aligned
from host.tiny_dit_models import TEXT_TOKENS, dit_conditioning, dit_noise, host_lacks
from test_transformer_host import alignedgen_attention

LATENT = 4
# kind -> (tokens of text the model attends to, RoPE axes numbering the text tokens, image token grid)
LAYOUTS = {
    "flux2_klein": (512, [3], (LATENT, LATENT)),  # patch 1; Flux2.extra_conds pads the text to 512
    "ovis_image": (TEXT_TOKENS, [1, 2], (LATENT // 2, LATENT // 2)),  # patch 2
}


@pytest.fixture(scope="module", params=sorted(LAYOUTS))
def kind(request, pack):
    if host_lacks(request.param):
        pytest.skip(host_lacks(request.param))
    return request.param


def text_ids(tokens, axes, text_axes):
    ids = torch.zeros(tokens, axes)
    for axis in text_axes:
        ids[:, axis] = torch.arange(tokens).float()
    return ids


def independent(model, kind, images_per_chunk, reference_index):
    """The AlignedGen attention of test_transformer_host, plus a check of the text tokens' positions."""
    params = model.model.diffusion_model.params
    text_tokens, text_axes, grid = LAYOUTS[kind]
    attention, seen = alignedgen_attention(params, images_per_chunk, reference_index, grid, text_tokens=text_tokens)
    expected_text = own_rope(text_ids(text_tokens, len(params.axes_dim), text_axes), params.axes_dim, params.theta)

    def checked(q, k, v, pe, mask=None, transformer_options={}):
        table = pe[0, 0, :text_tokens]
        torch.testing.assert_close((table[..., 0, 0], table[..., 1, 0]), expected_text, atol=1e-5, rtol=0)
        seen["text_checked"] = seen.get("text_checked", 0) + 1
        return attention(q, k, v, pe, mask=mask, transformer_options=transformer_options)

    return checked, seen


@pytest.mark.parametrize("reference_index, cfg", [(0, 3.0), (2, 1.0)])
def test_one_forward_matches_independent_alignedgen(model, kind, monkeypatch, reference_index, cfg):
    import comfy.ldm.flux.layers

    positive, negative = dit_conditioning(kind, seed=1), dit_conditioning(kind, seed=2)
    noise = dit_noise(kind, 3, seed=5, size=LATENT)
    plain = sample(model, noise, positive, negative, cfg=cfg, steps=1)
    patched = sample(style_aligned(model, reference_index=reference_index), noise, positive, negative, cfg=cfg, steps=1)
    attention, seen = independent(model, kind, 3, reference_index)
    monkeypatch.setattr(comfy.ldm.flux.layers, "attention", attention)
    reference_run = sample(model, noise, positive, negative, cfg=cfg, steps=1)
    monkeypatch.undo()
    dm = model.model.diffusion_model
    assert seen["shared"] == len(dm.single_blocks)  # AlignedGen: the single-stream blocks
    assert seen["text_checked"] == len(dm.double_blocks) + len(dm.single_blocks)
    assert seen["tokens"] == LAYOUTS[kind][0] + LAYOUTS[kind][2][0] * LAYOUTS[kind][2][1]
    targets = [row for row in range(3) if row != reference_index]
    assert max_diff(patched[reference_index], plain[reference_index]) < 1e-5
    assert max_diff(patched[targets], plain[targets]) > 1e-3  # not a comparison of two unpatched runs
    assert max_diff(patched, reference_run) < 1e-4
