"""The independent implementation the DiT tests check the pack against, written from the published
equations and the architectures (never from the pack): RoPE of position ids, AdaIN, and one attention call
with the reference's image keys (rotated at shifted positions, times lambda) and values appended and a
mask keeping the reference on its own tokens. Each family's test file wires it into the host's model in
place of the model's own RoPE and attention (it knows the family's token order, padding and stages).
"""

from __future__ import annotations

import math

import torch

from .sampling import sample, style_aligned
from .tiny_dit_models import dit_conditioning, dit_noise

EPS = 1e-5
REFERENCE_TOLERANCE = 1e-5
GRID = 4  # 8x8 latent, patch 2: 4x4 image tokens
IMAGE_TOKENS = GRID * GRID


def max_diff(a, b):
    return (a - b).abs().max().item()


def conds(kind, batch=1):
    """(positive, negative) conditioning of a tiny kind."""
    return dit_conditioning(kind, batch=batch, seed=1), dit_conditioning(kind, batch=batch, seed=2)


def own_rope(ids: torch.Tensor, axes_dim, theta) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin (L, D/2) for position ids (L, axes): channel pairs per axis, omega_j = theta^(-2j/d)."""
    angles = []
    for axis, dim in enumerate(axes_dim):
        omega = 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim)
        angles.append(ids[:, axis].double()[:, None] * omega[None, :])
    angle = torch.cat(angles, dim=-1)
    return angle.cos().float(), angle.sin().float()


def rotate_pairs(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    x0, x1 = x.float()[..., 0::2], x.float()[..., 1::2]
    return torch.stack([cos * x0 - sin * x1, sin * x0 + cos * x1], dim=-1).flatten(-2)


def adain(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per (head, channel) over tokens, population variance + EPS (the pack's UNet convention)."""
    x, y = x.double(), y.double()
    mx, vx = x.mean(-2, keepdim=True), x.var(-2, keepdim=True, unbiased=False)
    my, vy = y.mean(-2, keepdim=True), y.var(-2, keepdim=True, unbiased=False)
    return (x - mx) / (vx + EPS).sqrt() * (vy + EPS).sqrt() + my


def grid_ids(first, row_offset, col_offset, axes=3):
    """(GRID*GRID, axes) row-major ids (first, row + row_offset, col + col_offset, 0...)."""
    ids = torch.zeros(IMAGE_TOKENS, axes)
    ids[:, 0] = first
    ids[:, 1] = torch.arange(GRID).repeat_interleave(GRID).float() + row_offset
    ids[:, 2] = torch.arange(GRID).repeat(GRID).float() + col_offset
    return ids


def rope_first_channels(x, cos, sin):
    """RoPE on the first 2 * cos.shape[-1] channels of each head (all of them unless the RoPE is partial)."""
    rotated = 2 * cos.shape[-1]
    return torch.cat([rotate_pairs(x[..., :rotated], cos, sin), x[..., rotated:].float()], dim=-1)


def independent_attention(q, k, v, transformer_options, image, images_per_chunk, reference_index, key_scale,
                          rope=None, shifted_rope=None, shared=True):
    """q/k/v (B, H, L, D) before RoPE; rope / shifted_rope (cos, sin) for all L tokens / the image tokens.
    Returns (B, L, H*D)."""
    rows, heads, tokens, dim = q.shape
    chunks = len(transformer_options["cond_or_uncond"])
    assert rows == chunks * images_per_chunk
    q, k, v = q.double(), k.double(), v.double()
    references = [chunk * images_per_chunk + reference_index for chunk in range(chunks)]
    if shared:
        q, k = q.clone(), k.clone()
        for chunk, ref in enumerate(references):
            for row in range(chunk * images_per_chunk, (chunk + 1) * images_per_chunk):
                if row != ref:
                    q[row, :, image] = adain(q[row, :, image], q[ref, :, image])
                    k[row, :, image] = adain(k[row, :, image], k[ref, :, image])
    q_rot, k_rot = (x.float() if rope is None else rope_first_channels(x.float(), *rope) for x in (q, k))
    keys, values = k_rot, v.float()
    bias = torch.zeros(rows, 1, 1, tokens)
    if shared:
        reference_rows = [references[row // images_per_chunk] for row in range(rows)]
        reference_keys = k[reference_rows][:, :, image].float()
        if shifted_rope is not None:
            reference_keys = rope_first_channels(reference_keys, *shifted_rope)
        keys = torch.cat([keys, reference_keys * key_scale], dim=2)
        values = torch.cat([values, v[reference_rows][:, :, image].float()], dim=2)
        bias = torch.zeros(rows, 1, 1, keys.shape[2])
        for ref in references:
            bias[ref, ..., tokens:] = -math.inf
    out = torch.nn.functional.scaled_dot_product_attention(q_rot, keys, values, attn_mask=bias)
    return out.transpose(1, 2).reshape(rows, tokens, heads * dim)


def table_cos_sin(pe):
    """(cos, sin) of a host RoPE table (..., L, D/2, 2, 2)."""
    return pe[..., 0, 0].float(), pe[..., 1, 0].float()


def check_image_rope(pe_image, ids, axes_dim, theta):
    """The model's own rotations on the image tokens are our RoPE at the positions we expect."""
    cos, sin = own_rope(ids, axes_dim, theta)
    torch.testing.assert_close(table_cos_sin(pe_image), (cos, sin), atol=1e-5, rtol=0)


def one_forward(model, noise, positive, negative, **inputs):
    """One Euler step at cfg 3 with the patch: one model call with both chunks ([uncond, cond])."""
    return sample(style_aligned(model, **inputs), noise, positive, negative, cfg=3.0, steps=1)


def check_one_forward(model, kind, monkeypatch, install_independent, key_scale, expected_shared):
    """One forward of the patched model equals the independent implementation installed in the host
    (install_independent(monkeypatch, kind, diffusion_model, images_per_chunk, reference_index, key_scale)
    -> a dict counting the calls it shared); the reference is as without the pack, the targets are not."""
    positive, negative = conds(kind)
    noise = dit_noise(kind, 3, seed=3)
    patched = one_forward(model, noise, positive, negative)
    plain = sample(model, noise, positive, negative, cfg=3.0, steps=1)
    seen = install_independent(monkeypatch, kind, model.model.diffusion_model, 3, 0, key_scale)
    independent = sample(model, noise, positive, negative, cfg=3.0, steps=1)
    monkeypatch.undo()
    assert seen["shared"] == expected_shared
    assert max_diff(patched[0], plain[0]) < REFERENCE_TOLERANCE
    assert max_diff(patched[1:], plain[1:]) > 1e-2  # the comparison is not between two unpatched runs
    assert max_diff(patched, independent) < 1e-4


def check_all_blocks(kind, monkeypatch, install_independent, key_scale, expected_shared):
    """transformer_blocks "all" at reference_index 1 equals the independent implementation sharing every block."""
    from .tiny_dit_models import tiny_dit

    model = tiny_dit(kind)
    positive, negative = conds(kind)
    noise = dit_noise(kind, 3, seed=4)
    patched = one_forward(model, noise, positive, negative, transformer_blocks="all", reference_index=1)
    seen = install_independent(monkeypatch, kind, model.model.diffusion_model, 3, 1, key_scale, blocks="all")
    independent = sample(model, noise, positive, negative, cfg=3.0, steps=1)
    monkeypatch.undo()
    assert seen["shared"] == expected_shared
    assert max_diff(patched, independent) < 1e-4
