"""AdaIN towards several weighted references: the moments of their mixture (references.py).

With normalised weights w_i (sum 1) and each reference's per-channel mean mu_i and population variance
var_i over its tokens, the mixture of the references' token distributions has
    mu  = sum_i w_i mu_i
    var = sum_i w_i (var_i + mu_i^2) - mu^2  =  sum_i w_i (var_i + (mu_i - mu)^2)
computed in the second form (no cancellation when the means are large), in float32; its std is
sqrt(var + VARIANCE_EPS) as for one reference. The routes apply it (unet/reference_affine.py, the
transformer override); one reference takes today's path (maths.adain) untouched, bit for bit.
"""

from __future__ import annotations

from typing import Sequence

import torch

from .adain import VARIANCE_EPS


def mixture_stats(
    means: torch.Tensor, variances: torch.Tensor, weights: Sequence[float], axis: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) of the weighted mixture; the references lie along `axis` (kept, size 1)."""
    shape = [1] * means.dim()
    shape[axis] = len(weights)
    w = torch.tensor(list(weights), dtype=torch.float32, device=means.device).reshape(shape)
    mean = (w * means).sum(dim=axis, keepdim=True)
    variance = (w * (variances + (means - mean).square())).sum(dim=axis, keepdim=True)
    return mean, (variance + VARIANCE_EPS).sqrt()
