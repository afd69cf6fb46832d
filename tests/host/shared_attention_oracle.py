"""An independent implementation of shared attention for the per-family oracle tests (written from the
published equations, not from the pack): the family test replaces the host's RoPE call by one that records
the rotation and leaves q/k as they are, and the host's attention call by `shared_attention` below, which
does the published order in one attention call per model call:

    q_t[I], k_t[I] <- AdaIN(q_t[I], q_r[I]), AdaIN(k_t[I], k_r[I])     (per head and channel, before RoPE)
    q, k           <- RoPE(q), RoPE(k)                                   (the model's table)
    out_t          =  attention(q_t, [k_t ; lambda RoPE_shifted(k_r[I])], [v_t ; v_r[I]])
    out_r          =  attention(q_r, k_r, v_r)                           (a mask keeps it on its own keys)

with I the generated image's tokens, r the reference of the target's chunk, RoPE_shifted the positions
moved by the image width along the width axis (the family test computes it with its own RoPE maths).
It extends tests/host/dit_oracle.py (same AdaIN) to what the issue-17 families need: any RoPE channel
pairing (interleaved or split-half), a call's own key mask, cross-attention lengths, heads-first output.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch

from .dit_oracle import REFERENCE_TOLERANCE, adain


def own_angles(ids: torch.Tensor, axes_dim, theta: float) -> torch.Tensor:
    """(L, D/2) RoPE angles for position ids (L, axes): each axis owns consecutive channel pairs,
    omega_j = theta^(-2j / axis_dim)."""
    angles = []
    for axis, dim in enumerate(axes_dim):
        omega = 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim)
        angles.append(ids[:, axis].double()[:, None] * omega[None, :])
    return torch.cat(angles, dim=-1)


def rotate_interleaved(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """RoPE on channel pairs (2i, 2i + 1); angles (L, D/2) broadcast over leading axes."""
    cos, sin = angles.cos(), angles.sin()
    x0, x1 = x.double()[..., 0::2], x.double()[..., 1::2]
    return torch.stack([cos * x0 - sin * x1, sin * x0 + cos * x1], dim=-1).flatten(-2)


def rotate_split_half(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """RoPE on channel pairs (i, i + D/2) (rotate-half convention)."""
    cos, sin = angles.cos(), angles.sin()
    half = x.shape[-1] // 2
    x0, x1 = x.double()[..., :half], x.double()[..., half:]
    return torch.cat([cos * x0 - sin * x1, sin * x0 + cos * x1], dim=-1)


def table_angles(table: torch.Tensor) -> torch.Tensor:
    """(..., D/2) angles of a host rotation table (..., D/2, 2, 2) [[cos, -sin], [sin, cos]]."""
    return torch.atan2(table[..., 1, 0].double(), table[..., 0, 0].double())


def shared_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, chunks: int, images_per_chunk: int, reference_index: int,
    image: slice, key_scale: float, angles: Optional[torch.Tensor] = None, shifted_angles: Optional[torch.Tensor] = None,
    shared: bool = True, key_bias: Optional[torch.Tensor] = None, rotate: Callable = rotate_interleaved,
) -> torch.Tensor:
    """q/k/v (B, H, L, D) before RoPE. angles (L, D/2): the RoPE of every token (None: no RoPE; zero
    rows for tokens without RoPE); shifted_angles (image tokens, D/2): the reference keys' shifted
    positions. key_bias: the call's own additive mask over its keys, (B or 1, 1, 1, L). Returns
    (B, H, L, D) float32."""
    rows, heads, tokens, dim = q.shape
    assert rows == chunks * images_per_chunk
    q, k, v = q.double().clone(), k.double().clone(), v.double()
    references = [chunk * images_per_chunk + reference_index for chunk in range(chunks)]
    if shared:
        for chunk, ref in enumerate(references):
            for row in range(chunk * images_per_chunk, (chunk + 1) * images_per_chunk):
                if row != ref:
                    q[row, :, image] = adain(q[row, :, image], q[ref, :, image])
                    k[row, :, image] = adain(k[row, :, image], k[ref, :, image])
    q_rot, k_rot = (x if angles is None else rotate(x, angles) for x in (q, k))
    keys, values = k_rot, v
    own_keys = k.shape[2]
    bias = torch.zeros(rows, 1, 1, own_keys, dtype=torch.float64)
    if key_bias is not None:
        bias = bias + key_bias.double()
    if shared:
        reference_rows = [references[row // images_per_chunk] for row in range(rows)]
        reference_keys = k[reference_rows][:, :, image]
        if shifted_angles is not None:
            reference_keys = rotate(reference_keys, shifted_angles)
        keys = torch.cat([keys, reference_keys * key_scale], dim=2)
        values = torch.cat([values, v[reference_rows][:, :, image]], dim=2)
        appended = torch.zeros(rows, 1, 1, keys.shape[2] - own_keys, dtype=torch.float64)
        for ref in references:
            appended[ref] = -math.inf
        bias = torch.cat([bias.expand(rows, 1, 1, own_keys), appended], dim=-1)
    out = torch.nn.functional.scaled_dot_product_attention(q_rot, keys, values, attn_mask=bias)
    return out.float()


def flattened(out: torch.Tensor) -> torch.Tensor:
    """(B, H, L, D) -> (B, L, H*D), as the host's backends return without skip_output_reshape."""
    rows, heads, tokens, dim = out.shape
    return out.transpose(1, 2).reshape(rows, tokens, heads * dim)


def grid_positions(rows: int, cols: int, first=0.0, row_start=0.0, col_start=0.0, row_step=1.0, col_step=1.0) -> torch.Tensor:
    """(rows * cols, 3) ids (first, row, col), row-major."""
    ids = torch.zeros(rows * cols, 3, dtype=torch.float64)
    ids[:, 0] = first
    ids[:, 1] = torch.arange(rows, dtype=torch.float64).repeat_interleave(cols) * row_step + row_start
    ids[:, 2] = torch.arange(cols, dtype=torch.float64).repeat(rows) * col_step + col_start
    return ids


def assert_same_rotations(angles: torch.Tensor, expected: torch.Tensor) -> None:
    """The model's rotations are ours at the positions we expect (compared as cos and sin: angles wrap)."""
    torch.testing.assert_close((angles.cos(), angles.sin()), (expected.cos(), expected.sin()), atol=1e-5, rtol=0)


def tiny_model_or_skip(kind: str):
    """The tiny model of `kind`; skips where the running host lacks its config class (an older ComfyUI)."""
    import pytest

    from .tiny_dit_models import host_lacks, tiny_dit

    lacks = host_lacks(kind)
    if lacks:
        pytest.skip(lacks)
    return tiny_dit(kind)


def check_one_forward(model, kind: str, positive, negative, monkeypatch, install: Callable, reference_index: int = 0,
                      images: int = 3, seed: int = 3, **node_inputs) -> dict:
    """One Euler step at cfg 3 (one model call, both chunks) with the pack, then with the independent
    implementation installed by install(monkeypatch, images, reference_index) (which returns what it saw):
    the reference equals the unpatched model's, the targets differ from it, and the pack equals the
    independent implementation within 1e-4. Returns what the independent implementation saw."""
    from .sampling import sample, style_aligned
    from .tiny_dit_models import dit_noise

    noise = dit_noise(kind, images, seed=seed)
    patched = sample(style_aligned(model, reference_index=reference_index, **node_inputs), noise, positive, negative, cfg=3.0, steps=1)
    plain = sample(model, noise, positive, negative, cfg=3.0, steps=1)
    seen = install(monkeypatch, images, reference_index)
    independent = sample(model, noise, positive, negative, cfg=3.0, steps=1)
    monkeypatch.undo()
    targets = [i for i in range(images) if i != reference_index]
    assert (patched[reference_index] - plain[reference_index]).abs().max() < REFERENCE_TOLERANCE
    assert (patched[targets] - plain[targets]).abs().max() > 1e-2  # not a comparison of two unpatched runs
    assert (patched - independent).abs().max() < 1e-4
    return seen


def video_refusal(model, positive, negative, error_type, channels: int = 16, frames: int = 3) -> str:
    """The message of the error_type (StyleAlignedError) a StyleAlignedPatch model raises when sampled on
    a latent of `frames` frames (a video); fails when it samples instead."""
    import pytest

    from .sampling import sample, style_aligned

    video = torch.randn(2, channels, frames, 8, 8, generator=torch.Generator().manual_seed(5))
    with pytest.raises(error_type) as error:
        sample(style_aligned(model), video, positive, negative, cfg=1.0, steps=1)
    return str(error.value)
