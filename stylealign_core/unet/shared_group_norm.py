"""Shared GroupNorm on UNets (the authors' share_group_norm, off by default as in their demos).

In every GroupNorm of the UNet (ResBlocks, the spatial transformers' input norm, the output norm) a
target's statistics are taken per group over its own feature map and its chunk's reference's together;
the reference normalises alone, so it is unchanged. The authors' register_shared_norm does this by
concatenating the reference's feature map to each image's along the height axis, normalising, and keeping
the image's part; with both maps the same size that is, per group g of target t and reference r:
    mu   = (mu_t + mu_r) / 2
    var  = (var_t + var_r) / 2 + ((mu_t - mu_r) / 2)^2          (population variances, as GroupNorm)
    out_t = weight * (x_t - mu) / sqrt(var + eps) + bias
computed here in float32 as one affine pass per (image, channel). The reference rows are the module's own
output on them, so they are exactly as without the pack.

Installed per GroupNorm as the module's `forward` through a ModelPatcher object patch (the host applies
and removes it; the shared model is never changed): SharedGroupNormForward wraps the forward it replaces
and reads the model call's layout from the runtime. Outside a StyleAligned model call, when the schedule
is inactive, or for tensors of another batch (a nested split), it calls the wrapped forward.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Callable, Optional

import torch

from ..batch_layout import BatchLayout
from .patch_runtime import PatchRuntime

# (module, like) -> context manager giving (weight, bias) usable with `like` (None where the norm has none)
AffineParameters = Callable[[torch.nn.Module, torch.Tensor], AbstractContextManager]


def shared_group_norm(
    x: torch.Tensor, layout: BatchLayout, groups: int, eps: float,
    weight: Optional[torch.Tensor], bias: Optional[torch.Tensor],
) -> torch.Tensor:
    """GroupNorm of every row with its statistics shared with its chunk's reference (see the module
    docstring); the reference rows get their own statistics. (rows, C, ...) -> same shape and dtype."""
    rows, channels = x.shape[0], x.shape[1]
    grouped = x.reshape(layout.chunks, layout.images_per_chunk, groups, channels // groups, -1)
    values = grouped.float()
    variance, mean = torch.var_mean(values, dim=(-2, -1), keepdim=True, correction=0)
    r = layout.reference_index
    reference_mean, reference_variance = mean[:, r : r + 1], variance[:, r : r + 1]
    joint_mean = (mean + reference_mean) * 0.5
    joint_variance = (variance + reference_variance) * 0.5 + ((mean - reference_mean) * 0.5).square()
    scale = torch.rsqrt(joint_variance + eps)  # (chunks, images, groups, 1, 1)
    if weight is not None:
        scale = scale * weight.to(device=x.device, dtype=torch.float32).reshape(groups, channels // groups, 1)
    shift = -joint_mean * scale
    if bias is not None:
        shift = shift + bias.to(device=x.device, dtype=torch.float32).reshape(groups, channels // groups, 1)
    return torch.addcmul(shift, values, scale).to(x.dtype).reshape(x.shape)


class SharedGroupNormForward:
    """The `forward` object patch of one GroupNorm module."""

    def __init__(self, wrapped_forward: Callable, module: torch.nn.Module, runtime: PatchRuntime, affine: AffineParameters) -> None:
        self.wrapped_forward = wrapped_forward
        self.module = module
        self.runtime = runtime
        # The reference rows' index tensor per (layout, device): built once, not in every GroupNorm call.
        self._reference_rows: dict = {}
        self.affine = affine

    def __deepcopy__(self, memo):
        return self

    def __call__(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        call = self.runtime.current_call
        layout = call.layout if call is not None else None
        if (
            layout is None or not call.active or args or kwargs or x.dim() < 3 or x.shape[0] != layout.rows
            or x.shape[1] % self.module.num_groups != 0
        ):
            return self.wrapped_forward(x, *args, **kwargs)
        with self.affine(self.module, x) as (weight, bias):
            out = shared_group_norm(x, layout, self.module.num_groups, self.module.eps, weight, bias)
        reference_rows = self._reference_rows.get((layout, x.device))
        if reference_rows is None:
            reference_rows = self._reference_rows[(layout, x.device)] = torch.tensor(layout.reference_rows(), device=x.device)
        out.index_copy_(0, reference_rows, self.wrapped_forward(x.index_select(0, reference_rows)))
        return out
