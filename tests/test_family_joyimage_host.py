"""JoyImage (ComfyUI 0.33+) on a tiny random model: one forward equals the independent implementation.

The host's fused RMSNorm + RoPE (comfy_kitchen.rms_rope) is replaced by one that records the model's
rotation table and normalises with the identity rotation, so the host's attention call receives q/k
before RoPE; that call is replaced by the independent implementation (host/shared_attention_oracle.py)
with the architecture's token order, [target image, edit reference latents, text], RoPE on the image
streams only (ids (t, row, col) from 0, theta 10000, axes 16/56/56 of the 128-wide heads), and the
reference keys at columns shifted by the image width. Skips on hosts without JoyImage (0.3.75).
"""

import pytest
import torch

from host.shared_attention_oracle import assert_same_rotations, check_one_forward, flattened, grid_positions, own_angles, shared_attention, table_angles, tiny_model_or_skip
from host.tiny_dit_models import TEXT_TOKENS, TINY_DITS, dit_conditioning, dit_noise

KIND = "joyimage"
GRID = 4  # 8x8 latent, patch 2: 4x4 image tokens
IMAGE_TOKENS = GRID * GRID
LAMBDA = 1.1
AXES, THETA = (16, 56, 56), 10000.0


@pytest.fixture(scope="module")
def model(pack):
    return tiny_model_or_skip(KIND)


def conds():
    return dit_conditioning(KIND, seed=1), dit_conditioning(KIND, seed=2)


def install_independent(patch, images_per_chunk, reference_index, image_tokens=IMAGE_TOKENS):
    import comfy_kitchen
    import comfy.ldm.joyimage.model as host

    state, seen = {}, {"shared": 0}
    fused = comfy_kitchen.rms_rope

    def rms_rope_recorded(q, k, freqs, *args, **kwargs):
        state["table"] = freqs
        identity = torch.zeros_like(freqs)
        identity[..., 0, 0] = identity[..., 1, 1] = 1
        return fused(q, k, identity, *args, **kwargs)

    def attention(q, k, v, heads, transformer_options={}, **kwargs):
        assert "mask" not in kwargs and not kwargs.get("skip_reshape", False)
        q, k, v = (t.view(t.shape[0], t.shape[1], heads, -1).transpose(1, 2) for t in (q, k, v))
        table = table_angles(state["table"][0, :, 0])  # (image tokens incl. edit latents, D/2)
        image = slice(0, IMAGE_TOKENS)
        expected = own_angles(grid_positions(GRID, GRID), AXES, THETA)
        assert_same_rotations(table[image], expected)
        # RoPE on the image stream (target and edit latents), none on the text.
        angles = torch.cat([table, torch.zeros(q.shape[2] - table.shape[0], table.shape[1], dtype=table.dtype)])
        shifted = own_angles(grid_positions(GRID, GRID, col_start=GRID), AXES, THETA)
        seen["shared"] += 1
        seen["tokens"] = q.shape[2]
        out = shared_attention(q, k, v, len(transformer_options["cond_or_uncond"]), images_per_chunk, reference_index,
                               image, LAMBDA, angles=angles, shifted_angles=shifted)
        return flattened(out).to(q.dtype)

    patch.setattr(comfy_kitchen, "rms_rope", rms_rope_recorded)
    patch.setattr(host, "optimized_attention", attention)
    return seen


@pytest.mark.parametrize("reference_index", [0, 2])
def test_one_forward_matches_independent_implementation(model, monkeypatch, reference_index):
    """One Euler step at cfg 3: one model call with both chunks; every block shared."""
    positive, negative = conds()
    seen = check_one_forward(model, KIND, positive, negative, monkeypatch, install_independent, reference_index)
    assert seen["shared"] == TINY_DITS[KIND].unet_config["num_layers"]
    assert seen["tokens"] == IMAGE_TOKENS + TEXT_TOKENS


def test_edit_reference_latents_are_neither_shared_nor_normalised(model, monkeypatch):
    """JoyImage-Edit: reference latents become image tokens after the target's (their own t band); they
    are left alone, as the independent implementation does."""
    positive, negative = conds()
    edit = dit_noise(KIND, 1, seed=42)
    positive, negative = ([[c, dict(extras, reference_latents=[edit])] for c, extras in cond] for cond in (positive, negative))
    seen = check_one_forward(model, KIND, positive, negative, monkeypatch, install_independent)
    assert seen["tokens"] == 2 * IMAGE_TOKENS + TEXT_TOKENS
