"""Rotary position embedding (RoPE) as rotation matrices: rotate, undo, and shift positions afterwards.

The matrices have the layout the Flux-family embedders produce (`EmbedND`): (..., L, D/2, 2, 2), one 2x2
rotation per channel pair (x[2i], x[2i+1]) and token. The host glue builds them with the model's own
embedder, so theta, the axes and any rope_options the model honours are the model's own.
Rotations compose and commute: R(delta) R(p) k = R(p + delta) k, so keys can be moved to shifted positions
after the model rotated them, and R(p)^T = R(-p) undoes a rotation (AdaIN "before RoPE").
"""

from __future__ import annotations

import torch


def rotate(x: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    """R x for every channel pair, in float32: x (..., L, D), rotations broadcastable to (..., L, D/2, 2, 2)."""
    pairs = x.float().reshape(*x.shape[:-1], -1, 1, 2)
    rotated = rotations[..., 0] * pairs[..., 0] + rotations[..., 1] * pairs[..., 1]
    return rotated.reshape(*x.shape[:-1], -1)


def unrotate(x: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    """R^T x = R(-p) x: the tokens as they were before the model applied RoPE (float32)."""
    return rotate(x, rotations.transpose(-1, -2))
