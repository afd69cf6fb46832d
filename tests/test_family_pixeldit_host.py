"""PixelDiT (ComfyUI 0.33+) on a tiny random model: one forward equals the independent implementation.

The host's RoPE calls (flux.math.apply_rope, imported by the PixelDiT modules) are replaced by ones that
record the model's tables and leave q/k as they are; its attention calls by the independent
implementation (host/shared_attention_oracle.py) with the architecture's layout: each patch block on
[text, image] (text 1-D RoPE, image 2-D RoPE), its output kept heads-first (skip_output_reshape); then each
pixel block on the image alone with heads of another width. The 2-D positions are written here from
the equations: x = col * 16 / (W - 1), y = row * 16 / (H - 1), channel pairs alternating x and y
(pair 2j: x * omega_j, pair 2j + 1: y * omega_j, omega_j = 10000^(-2j / (D/2))), the reference keys at x
moved by the image width, 16 * W / (W - 1). PiD (the pixel decoder, LQ features added before the blocks)
takes NTK-scaled theta per axis, 10000 * (grid / reference grid)^(d / (d - 2)) for an axis of d channels.
Skips on hosts without PixelDiT (0.3.75).
"""

import functools

import pytest
import torch

from host.shared_attention_oracle import assert_same_rotations, check_one_forward, flattened, shared_attention, table_angles, tiny_model_or_skip
from host.tiny_dit_models import TEXT_TOKENS, TINY_DITS, dit_conditioning

KINDS = ("pixeldit", "pid")
CONFIG = TINY_DITS["pixeldit"].unet_config  # PiD: the same blocks
GRID = 4  # 8x8 pixels, patch 2: 4x4 patch tokens
IMAGE_TOKENS = GRID * GRID
LAMBDA = 1.1
THETA = 10000.0


@pytest.fixture(scope="module", params=KINDS)
def kind(request, pack):
    return request.param


@pytest.fixture(scope="module")
def model(kind):
    return tiny_model_or_skip(kind)


def conds(kind):
    return dit_conditioning(kind, seed=1), dit_conditioning(kind, seed=2)


def stretched_2d_angles(kind: str, head_dim: int, col_offset: float = 0.0) -> torch.Tensor:
    """(GRID * GRID, head_dim / 2) angles: both axes stretched over 0..16, pairs alternating x and y."""
    steps = torch.arange(GRID, dtype=torch.float64) * 16.0 / (GRID - 1)
    x = steps.repeat(GRID) + col_offset
    y = steps.repeat_interleave(GRID)
    axis_dim = head_dim // 2
    theta = THETA
    if kind == "pid":  # NTK: the grid against the reference grid (rope_ref_w pixels / patch)
        reference_grid = TINY_DITS[kind].unet_config["rope_ref_w"] / CONFIG["patch_size"]
        theta = THETA * (GRID / reference_grid) ** (axis_dim / (axis_dim - 2))
    omega = 1.0 / theta ** (torch.arange(0, axis_dim, 2, dtype=torch.float64) / axis_dim)
    return torch.stack([x[:, None] * omega, y[:, None] * omega], dim=-1).flatten(-2)


def install_independent(kind, patch, images_per_chunk, reference_index, blocks="auto"):
    import comfy.ldm.pixeldit.model as host
    import comfy.ldm.pixeldit.modules as modules

    state, seen = {"tables": []}, {"shared": 0, "patch": 0, "pixel": 0}
    width = 16.0 * GRID / (GRID - 1)

    def apply_rope_recorded(q, k, freqs):
        state["tables"].append(freqs)
        return q, k

    def common(q, transformer_options):
        return dict(chunks=len(transformer_options["cond_or_uncond"]), images_per_chunk=images_per_chunk,
                    reference_index=reference_index, key_scale=LAMBDA)

    def joint_attention(q, k, v, heads, mask=None, transformer_options={}, skip_reshape=False, skip_output_reshape=False, **kwargs):
        assert mask is None and skip_reshape and skip_output_reshape
        image_table, text_table = (table_angles(t[0, 0]) for t in state["tables"][-2:])
        state["tables"].clear()
        head_dim = q.shape[-1]
        assert_same_rotations(image_table, stretched_2d_angles(kind, head_dim))
        text = q.shape[2] - IMAGE_TOKENS
        assert text == min(TEXT_TOKENS, CONFIG["txt_max_length"])
        seen["patch"] += 1
        seen["shared"] += 1
        out = shared_attention(q, k, v, image=slice(text, text + IMAGE_TOKENS), angles=torch.cat([text_table, image_table]),
                               shifted_angles=stretched_2d_angles(kind, head_dim, width), **common(q, transformer_options))
        return out.to(q.dtype)  # heads first: skip_output_reshape

    def pixel_attention(q, k, v, heads, mask=None, transformer_options={}, skip_reshape=False, **kwargs):
        assert mask is None and skip_reshape
        table = table_angles(state["tables"].pop()[0, 0])
        head_dim = q.shape[-1]
        assert head_dim != CONFIG["hidden_size"] // CONFIG["num_groups"]
        assert_same_rotations(table, stretched_2d_angles(kind, head_dim))
        shared = blocks in ("auto", "all", "pixel")
        seen["pixel"] += 1
        seen["shared"] += shared
        out = shared_attention(q, k, v, image=slice(0, IMAGE_TOKENS), angles=table, shared=shared,
                               shifted_angles=stretched_2d_angles(kind, head_dim, width), **common(q, transformer_options))
        return flattened(out).to(q.dtype)

    patch.setattr(host, "apply_rope", apply_rope_recorded)
    patch.setattr(modules, "apply_rope", apply_rope_recorded)
    patch.setattr(host, "optimized_attention", joint_attention)
    patch.setattr(modules, "optimized_attention", pixel_attention)
    return seen


@pytest.mark.parametrize("reference_index", [0, 1])
def test_one_forward_matches_independent_implementation(model, kind, monkeypatch, reference_index):
    """One Euler step at cfg 3: one model call with both chunks; both stages shared by default."""
    positive, negative = conds(kind)
    install = functools.partial(install_independent, kind)
    seen = check_one_forward(model, kind, positive, negative, monkeypatch, install, reference_index)
    assert (seen["patch"], seen["pixel"]) == (CONFIG["patch_depth"], CONFIG["pixel_depth"])
    assert seen["shared"] == CONFIG["patch_depth"] + CONFIG["pixel_depth"]

