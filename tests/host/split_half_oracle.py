"""Independent maths for the oracle tests of split-half (Qwen3-VL style) RoPE families: interleaved MRoPE
angles and the rotate-half RoPE formula, written from the equations in float64 (AdaIN: dit_oracle.adain)."""

from __future__ import annotations

import torch


def interleaved_mrope_angles(ids: torch.Tensor, head_dim: int, theta: float, section) -> tuple:
    """(angles (L, D/2), omega (D/2,), axis (D/2,)) for position ids (L, 3) = (t, row, col): channel pair j
    turns at omega_j = theta^(-2j/D) on the row axis when j = 1 (mod 3) and j < 3 * section[1], on the
    column axis when j = 2 (mod 3) and j < 3 * section[2], else on the time axis."""
    pairs = head_dim // 2
    omega = 1.0 / theta ** (torch.arange(pairs, dtype=torch.float64) * 2 / head_dim)
    axis = torch.zeros(pairs, dtype=torch.long)
    for j in range(pairs):
        if j % 3 == 1 and j < 3 * section[1]:
            axis[j] = 1
        elif j % 3 == 2 and j < 3 * section[2]:
            axis[j] = 2
    return ids.double()[:, axis] * omega, omega, axis


def grid_position_ids(rows: int, cols: int, offset: int) -> torch.Tensor:
    """(rows * cols, 3) ids (0, row, col) + offset, row-major."""
    row = torch.arange(rows).repeat_interleave(cols)
    col = torch.arange(cols).repeat(rows)
    return torch.stack([torch.zeros_like(row), row, col], dim=1) + offset


def table_angles(table: torch.Tensor) -> torch.Tensor:
    """The angles of a host table of [[cos, -sin], [sin, cos]] matrices (..., D/2, 2, 2), float64."""
    table = table.double()
    return torch.atan2(table[..., 1, 0], table[..., 0, 0])


def rotate_half_rope(x: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """x (..., L, D), angle (L, D/2): x cos + rotate_half(x) sin with rotate_half(x) = (-x[D/2:], x[:D/2])."""
    cos, sin = torch.cat([angle.cos()] * 2, -1), torch.cat([angle.sin()] * 2, -1)
    x = x.double()
    half = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], dim=-1) * sin
