"""Kandinsky 5 Image (ComfyUI 0.33+) on a tiny random model: one forward equals the independent
implementation, and video inputs are refused.

The host's RoPE call (flux.math.apply_rope1, imported by the Kandinsky 5 module) is replaced by one that
records the model's table and leaves q/k as they are; the module's attention function by the independent
implementation (host/shared_attention_oracle.py), which knows the architecture's call order: the text
encoder blocks' self-attention over the text (RoPE, never shared), then per visual block the image-only
self-attention (RoPE on ids (0, row / 2, col / 2) with the tiny model's rope_scale_factor (1, 2, 2),
shared; the reference keys at columns shifted by the image width, 4 tokens = 2 position units) and the
cross-attention to the text (no RoPE, never shared). Skips on hosts without Kandinsky 5 (0.3.75).
"""

import pytest
import torch

from host.shared_attention_oracle import assert_same_rotations, check_one_forward, flattened, grid_positions, own_angles, shared_attention, table_angles, tiny_model_or_skip, video_refusal
from host.tiny_dit_models import TINY_DITS, dit_conditioning

KIND = "kandinsky5_image"
VIDEO_FRAME = "kandinsky5_video_frame"  # the video config on one frame: the same calls
CONFIG = TINY_DITS[KIND].unet_config
GRID = 4  # 8x8 latent, patch 2: 4x4 image tokens
IMAGE_TOKENS = GRID * GRID
STEP = 1.0 / CONFIG["rope_scale_factor"][2]  # position units per token along rows and columns
LAMBDA = 1.1
THETA = 10000.0


@pytest.fixture(scope="module")
def model(pack):
    return tiny_model_or_skip(KIND)


def conds():
    return dit_conditioning(KIND, seed=1), dit_conditioning(KIND, seed=2)


def install_independent(patch, images_per_chunk, reference_index):
    import comfy.ldm.kandinsky5.model as host

    text_blocks, visual_blocks = CONFIG["num_text_blocks"], CONFIG["num_visual_blocks"]
    state, seen = {}, {"shared": 0, "calls": 0}

    def apply_rope1_recorded(x, freqs):
        state["table"] = freqs
        return x

    def attention(q, k, v, heads, transformer_options={}):
        index = seen["calls"] % (text_blocks + 2 * visual_blocks)
        seen["calls"] += 1
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, L, H, D) -> (B, H, L, D)
        common = dict(chunks=len(transformer_options["cond_or_uncond"]), images_per_chunk=images_per_chunk,
                      reference_index=reference_index, image=slice(0, IMAGE_TOKENS), key_scale=LAMBDA)
        if index < text_blocks:  # text encoder self-attention
            out = shared_attention(q, k, v, angles=table_angles(state["table"][0, :, 0]), shared=False, **common)
        elif (index - text_blocks) % 2 == 1:  # cross-attention to the text
            out = shared_attention(q, k, v, shared=False, **common)
        else:  # image-only self-attention
            table = table_angles(state["table"][0, :, 0])
            assert table.shape[0] == q.shape[2] == IMAGE_TOKENS
            assert_same_rotations(table, own_angles(grid_positions(GRID, GRID, row_step=STEP, col_step=STEP), CONFIG["axes_dims"], THETA))
            shifted = own_angles(grid_positions(GRID, GRID, row_step=STEP, col_step=STEP, col_start=GRID * STEP), CONFIG["axes_dims"], THETA)
            seen["shared"] += 1
            out = shared_attention(q, k, v, angles=table, shifted_angles=shifted, **common)
        return flattened(out).to(q.dtype)

    patch.setattr(host, "apply_rope1", apply_rope1_recorded)
    patch.setattr(host, "attention", attention)
    return seen


@pytest.mark.parametrize("reference_index", [0, 2])
def test_one_forward_matches_independent_implementation(model, monkeypatch, reference_index):
    """One Euler step at cfg 3: one model call with both chunks; every visual block's self-attention shared."""
    positive, negative = conds()
    seen = check_one_forward(model, KIND, positive, negative, monkeypatch, install_independent, reference_index)
    assert seen["shared"] == CONFIG["num_visual_blocks"]


def test_video_model_on_one_frame_matches_independent_implementation(pack, monkeypatch):
    """The video config (5-D latent, image-to-video channels concatenated) on one frame: the same calls."""
    model = tiny_model_or_skip(VIDEO_FRAME)
    positive, negative = conds()
    seen = check_one_forward(model, VIDEO_FRAME, positive, negative, monkeypatch, install_independent, 1)
    assert seen["shared"] == CONFIG["num_visual_blocks"]


def test_cross_attention_as_long_as_the_image_is_not_shared(model, monkeypatch):
    """Text exactly as long as the image's tokens: the cross-attention has the self-attention's shapes and
    tags, and must still pass through (the call order tells them apart)."""
    positive, negative = (dit_conditioning(KIND, seed=seed, tokens=IMAGE_TOKENS) for seed in (1, 2))
    seen = check_one_forward(model, KIND, positive, negative, monkeypatch, install_independent, seed=4)
    assert seen["shared"] == CONFIG["num_visual_blocks"]


def test_video_latent_is_refused(model, error_type):
    message = video_refusal(model, *conds(), error_type)
    assert "StyleAlignedPatch" in message and "Kandinsky 5 video" in message and "3 frames" in message
