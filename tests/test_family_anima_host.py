"""Anima (ComfyUI 0.33+) on a tiny random model: one forward equals the independent implementation.

The host's fused RMSNorm + split-half RoPE (comfy_kitchen's rms_rope_split_half, called by Cosmos
Predict2's attention) is replaced by one that records the model's table and normalises with the identity
rotation; the host's attention call by the independent implementation (host/shared_attention_oracle.py),
which knows the architecture's call order: per block the image-only self-attention (split-half RoPE,
pair i = channels (i, i + D/2), written here from the equations: ids (t, row, col), per-axis channel
counts t = D - 2 * (D // 6 * 2), row = col = D // 6 * 2, NTK theta 10000 * ratio^(d / (d - 2)); shared,
the reference keys at columns moved by the image width) then the cross-attention to the text (never
shared). Skips on hosts without Anima (0.3.75).
"""

import pytest
import torch

from host.shared_attention_oracle import assert_same_rotations, check_one_forward, flattened, rotate_split_half, shared_attention, table_angles, tiny_model_or_skip, video_refusal
from host.tiny_dit_models import TINY_DITS, dit_conditioning

KIND = "anima"
CONFIG = TINY_DITS[KIND].unet_config
GRID = 4  # 8x8 latent, patch 2: 4x4 image tokens
IMAGE_TOKENS = GRID * GRID
LAMBDA = 1.1


@pytest.fixture(scope="module")
def model(pack):
    return tiny_model_or_skip(KIND)


def conds(tokens=6):
    return dit_conditioning(KIND, seed=1, tokens=tokens), dit_conditioning(KIND, seed=2, tokens=tokens)


def cosmos_angles(col_offset: float = 0.0) -> torch.Tensor:
    """(GRID * GRID, D/2) angles of one frame: t pairs, then row pairs, then column pairs."""
    head_dim = CONFIG["model_channels"] // CONFIG["num_heads"]
    dim_h = dim_w = head_dim // 6 * 2
    dim_t = head_dim - 2 * dim_h

    def omega(dim, ratio):
        theta = 10000.0 * ratio ** (dim / (dim - 2))
        return 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim)

    rows = torch.arange(GRID, dtype=torch.float64).repeat_interleave(GRID)
    cols = torch.arange(GRID, dtype=torch.float64).repeat(GRID) + col_offset
    t = torch.zeros(GRID * GRID, dtype=torch.float64)
    return torch.cat([
        t[:, None] * omega(dim_t, CONFIG["rope_t_extrapolation_ratio"]),
        rows[:, None] * omega(dim_h, CONFIG["rope_h_extrapolation_ratio"]),
        cols[:, None] * omega(dim_w, CONFIG["rope_w_extrapolation_ratio"]),
    ], dim=-1)


def install_independent(patch, images_per_chunk, reference_index):
    import comfy.ldm.cosmos.predict2 as host
    import comfy.quant_ops

    kitchen = comfy.quant_ops.ck
    fused = kitchen.rms_rope_split_half
    state, seen = {}, {"shared": 0, "calls": 0}

    def rms_rope_split_half_recorded(q, k, freqs, *args, **kwargs):
        state["table"] = freqs
        identity = torch.zeros_like(freqs)
        identity[..., 0, 0] = identity[..., 1, 1] = 1
        return fused(q, k, identity, *args, **kwargs)

    def attention(q, k, v, heads, transformer_options={}, skip_reshape=False, **kwargs):
        assert skip_reshape and "mask" not in kwargs
        cross = seen["calls"] % 2 == 1
        seen["calls"] += 1
        common = dict(chunks=len(transformer_options["cond_or_uncond"]), images_per_chunk=images_per_chunk,
                      reference_index=reference_index, image=slice(0, IMAGE_TOKENS), key_scale=LAMBDA, rotate=rotate_split_half)
        if cross:
            out = shared_attention(q, k, v, shared=False, **common)
        else:
            table = table_angles(state["table"][0, :, 0])
            assert table.shape[0] == q.shape[2] == IMAGE_TOKENS
            assert_same_rotations(table, cosmos_angles())
            seen["shared"] += 1
            out = shared_attention(q, k, v, angles=table, shifted_angles=cosmos_angles(GRID), **common)
        return flattened(out).to(q.dtype)

    patch.setattr(kitchen, "rms_rope_split_half", rms_rope_split_half_recorded)
    patch.setattr(host, "optimized_attention", attention)
    return seen


@pytest.mark.parametrize("reference_index,text_tokens", [(0, 6), (2, IMAGE_TOKENS)])
def test_one_forward_matches_independent_implementation(model, monkeypatch, reference_index, text_tokens):
    """One Euler step at cfg 3: one model call with both chunks; every block's self-attention shared, the
    cross-attention left alone even when the text is as long as the image."""
    positive, negative = conds(text_tokens)
    seen = check_one_forward(model, KIND, positive, negative, monkeypatch, install_independent, reference_index)
    assert seen["shared"] == CONFIG["num_blocks"]


def test_video_latent_is_refused(model, error_type):
    message = video_refusal(model, *conds(), error_type)
    assert "StyleAlignedPatch" in message and "Anima" in message and "3 frames" in message
