"""Lens (ComfyUI 0.33+) on a tiny random model: one forward equals the independent implementation.

The host's RoPE call (flux.math.apply_rope, imported by the Lens module) is replaced by one that records
the model's table and leaves q/k as they are; the host's attention call by the independent
implementation (host/shared_attention_oracle.py) with the architecture's layout: [image, text], RoPE on
every token, image ids (0, row, col) centred (rows -(h - h//2) .. h//2 - 1), theta 10000, the reference
keys at columns shifted by the image width, and the model's own key mask (text padding) kept on each
row's own keys. Skips on hosts without Lens (0.3.75).
"""

import pytest
import torch

from host.shared_attention_oracle import assert_same_rotations, check_one_forward, flattened, grid_positions, own_angles, shared_attention, table_angles, tiny_model_or_skip
from host.tiny_dit_models import TEXT_TOKENS, TINY_DITS, dit_conditioning

KIND = "lens"
GRID = 8  # 8x8 latent: one token per latent pixel
IMAGE_TOKENS = GRID * GRID
LAMBDA = 1.1
THETA = 10000.0


@pytest.fixture(scope="module")
def model(pack):
    return tiny_model_or_skip(KIND)


def conds(text_mask=None):
    positive, negative = dit_conditioning(KIND, seed=1), dit_conditioning(KIND, seed=2)
    if text_mask is not None:
        positive, negative = ([[c, dict(extras, attention_mask=text_mask)] for c, extras in cond] for cond in (positive, negative))
    return positive, negative


def install_independent(patch, images_per_chunk, reference_index):
    import comfy.ldm.lens.model as host

    axes = TINY_DITS[KIND].unet_config["axes_dims_rope"]
    state, seen = {}, {"shared": 0, "masked": 0}

    def apply_rope_recorded(q, k, freqs):
        state["table"] = freqs
        return q, k

    def attention(q, k, v, heads, mask=None, transformer_options={}, skip_reshape=False, **kwargs):
        assert skip_reshape and mask is not None
        table = table_angles(state["table"][0, 0])  # (L, D/2)
        image = slice(0, IMAGE_TOKENS)
        first = -(GRID - GRID // 2)
        assert_same_rotations(table[image], own_angles(grid_positions(GRID, GRID, 0, first, first), axes, THETA))
        shifted = own_angles(grid_positions(GRID, GRID, 0, first, first + GRID), axes, THETA)
        seen["shared"] += 1
        seen["masked"] += int((mask < 0).any())
        out = shared_attention(q, k, v, len(transformer_options["cond_or_uncond"]), images_per_chunk, reference_index,
                               image, LAMBDA, angles=table, shifted_angles=shifted, key_bias=mask)
        return flattened(out).to(q.dtype)

    patch.setattr(host, "apply_rope", apply_rope_recorded)
    patch.setattr(host, "optimized_attention", attention)
    return seen


@pytest.mark.parametrize("reference_index,padded", [(0, False), (1, True)])
def test_one_forward_matches_independent_implementation(model, monkeypatch, reference_index, padded):
    """One Euler step at cfg 3: one model call with both chunks; every block shared. padded: the text
    mask hides the last two text tokens (the model's additive key mask is then not all zeros)."""
    text_mask = None
    if padded:
        text_mask = torch.ones(1, TEXT_TOKENS)
        text_mask[:, -2:] = 0
    positive, negative = conds(text_mask)
    seen = check_one_forward(model, KIND, positive, negative, monkeypatch, install_independent, reference_index)
    assert seen["shared"] == TINY_DITS[KIND].unet_config["num_layers"]
    assert seen["masked"] == (seen["shared"] if padded else 0)
