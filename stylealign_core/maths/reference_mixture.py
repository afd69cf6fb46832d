"""AdaIN towards several weighted references: the moments of their mixture (references.py).

With normalised weights w_i (sum 1) and each reference's per-channel mean mu_i and population variance
var_i over its tokens, the mixture of the references' token distributions has
    mu  = sum_i w_i mu_i
    var = sum_i w_i (var_i + mu_i^2) - mu^2  =  sum_i w_i (var_i + (mu_i - mu)^2)
computed in the second form (no cancellation when the means are large), in float32; its std is
sqrt(var + VARIANCE_EPS) as for one reference. A target is AdaIN-normalised to (mu, std); a reference
gets scale 1 and shift 0, so it passes through bit-identical.
One reference takes today's path (maths.adain) untouched, so its results are bit for bit the paper's.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..batch_layout import BatchLayout
from .adain import VARIANCE_EPS, adain_affine, channel_moments, channel_stats


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


def affine_to_references(grouped: torch.Tensor, layout: BatchLayout) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 (scale, shift), (chunks, images, 1, C), so that grouped * scale + shift is every image's
    AdaIN to its chunk's reference (one) or references' mixture (several); references map to themselves.
    grouped: (chunks, images, tokens, C)."""
    if not layout.several:
        mean, std = channel_stats(grouped)
        r = layout.reference_index
        return adain_affine(mean, std, mean[:, r : r + 1], std[:, r : r + 1])
    mean, variance = channel_moments(grouped)
    slots = list(layout.reference_slots)
    reference_mean, reference_std = mixture_stats(mean[:, slots], variance[:, slots], layout.normalised_weights, axis=1)
    scale, shift = adain_affine(mean, (variance + VARIANCE_EPS).sqrt(), reference_mean, reference_std)
    scale[:, slots] = 1.0
    shift[:, slots] = 0.0
    return scale, shift
