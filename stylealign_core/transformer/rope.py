"""Rotary position embedding (RoPE) as rotation matrices: rotate, undo, and shift positions afterwards.

The matrices have the layout the host's `EmbedND` embedders produce: (..., L, D/2, 2, 2), one 2x2
rotation per channel pair (x[2i], x[2i+1]) and token. The host glue builds them with the model's own
embedder, so theta, the axes and any rope_options the model honours are the model's own.
Rotations compose and commute: R(delta) R(p) k = R(p + delta) k, so keys can be moved to shifted positions
after the model rotated them, and R(p)^T = R(-p) undoes a rotation (AdaIN "before RoPE").

Position maths the families share lives here once: row-major id grids, the shift rule (the image's extent
along the width axis), the embedders' heads-axis normalisation and identity padding for partial RoPE.
A family with a new position scheme adds its function here.
"""

from __future__ import annotations

from typing import Optional

import torch


def rotate(x: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    """R x for every channel pair, in float32: x (..., L, D), rotations broadcastable to (..., L, D/2, 2, 2)."""
    pairs = x.float().reshape(*x.shape[:-1], -1, 1, 2)
    rotated = rotations[..., 0] * pairs[..., 0] + rotations[..., 1] * pairs[..., 1]
    return rotated.reshape(*x.shape[:-1], -1)


def unrotate(x: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    """R^T x = R(-p) x: the tokens as they were before the model applied RoPE (float32)."""
    return rotate(x, rotations.transpose(-1, -2))


def grid_ids(
    h_len: int, w_len: int, axes: int, first: float = 0.0, row_start: float = 0.0, col_start: float = 0.0,
    row_scale: float = 1.0, col_scale: float = 1.0, device=None,
) -> torch.Tensor:
    """(1, h*w, axes) row-major position ids (first, row_start + row * row_scale, col_start + col * col_scale, 0...)."""
    ids = torch.zeros(h_len, w_len, axes, device=device)
    ids[..., 0] = first
    ids[..., 1] = (torch.arange(h_len, dtype=torch.float32, device=device) * row_scale + row_start)[:, None]
    ids[..., 2] = (torch.arange(w_len, dtype=torch.float32, device=device) * col_scale + col_start)[None, :]
    return ids.reshape(1, h_len * w_len, axes)


def width_shift(ids: torch.Tensor, width_axis: int) -> torch.Tensor:
    """(1, 1, axes) position offset by the image's extent along the width axis (AlignedGen's ShiftPE: the
    reference's keys sit as if the reference were right of the target). ids: (1, N, axes) of the image."""
    shift = torch.zeros((1, 1, ids.shape[-1]), device=ids.device, dtype=torch.float32)
    shift[..., width_axis] = ids[0, :, width_axis].max() - ids[0, :, width_axis].min() + 1
    return shift


def heads_axis_first(table: torch.Tensor) -> torch.Tensor:
    """Embedders put the singleton heads axis at 1 (EmbedND) or 2: make the table (1, 1, L, ...)."""
    return table if table.shape[1] == 1 else table.movedim(2, 1)


def pad_identity(table: torch.Tensor, pairs: int) -> torch.Tensor:
    """The table padded with identity rotations up to `pairs` channel pairs (partial RoPE leaves the
    channels past its axes unrotated)."""
    identity = torch.eye(2, dtype=table.dtype, device=table.device).expand(*table.shape[:-3], pairs - table.shape[-3], 2, 2)
    return torch.cat([table, identity], dim=-3)


def image_and_shift_rotations(embed, ids: torch.Tensor, width_axis: int, device=None, head_dim: Optional[int] = None):
    """(image rotations (1, 1, N, D/2, 2, 2), shift rotation (1, 1, 1, D/2, 2, 2)) in float32 from the
    model's own embedder `embed` (ids (1, N, axes) -> table), the shift by width_shift. head_dim: pad both
    with identity rotations for the channels a partial RoPE leaves alone."""
    if device is not None:
        ids = ids.to(device)
    with torch.no_grad():
        tables = [heads_axis_first(embed(t)).float() for t in (ids, width_shift(ids, width_axis))]
    if head_dim is not None and tables[0].shape[-3] * 2 < head_dim:
        tables = [pad_identity(t, head_dim // 2) for t in tables]
    return tables[0], tables[1]
