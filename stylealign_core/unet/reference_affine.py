"""AdaIN of a UNet layer's images to their chunk's reference, or to the weighted mixture of its several
references (maths/reference_mixture.py); the references themselves map to themselves (scale 1, shift 0)."""

from __future__ import annotations

import torch

from ..batch_layout import BatchLayout
from ..maths.adain import VARIANCE_EPS, adain_affine, channel_moments, channel_stats
from ..maths.reference_mixture import mixture_stats


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
