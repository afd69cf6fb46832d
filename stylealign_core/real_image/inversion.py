"""Deterministic (DDIM-style) inversion of a clean latent into a noise trajectory.

Works on the model's denoised prediction D(x, sigma), which ComfyUI returns for every prediction type,
and on the model's own noise scaling (see noise_scaling.py). Over ascending sigmas s_1 < ... < s_n the
latent starts as the clean latent at s_1 and each step is the DDIM update run backwards: read the noise
the model sees, keep the model's clean prediction, and carry both to the next sigma:
    n_i = (x_i - a_i * D(x_i, s_i)) / b_i,    x_{i+1} = a_{i+1} * D(x_i, s_i) + b_{i+1} * n_i
The trajectory is stored as the noise of each x_i relative to the clean latent c,
m_i = (x_i - a_i * c) / b_i, so x_i = a_i * c + b_i * m_i is rebuilt exactly at every s_i.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

from ..errors import StyleAlignedError
from .noise_scaling import NoiseScaling


class NonFiniteInversion(StyleAlignedError):
    """The inversion's trajectory went NaN or inf at some step (the message names it)."""


# (noisy model-space latent (1, C, H, W), sigma) -> denoised model-space latent
DenoiseFn = Callable[[torch.Tensor, float], torch.Tensor]


def inversion_sigmas(sampling_sigmas: torch.Tensor) -> torch.Tensor:
    """The positive sigmas of a sampling schedule, ascending, float64."""
    ascending = torch.sort(sampling_sigmas.double().flatten().unique()).values
    return ascending[ascending > 0]


def invert(
    denoise: DenoiseFn,
    clean_model_latent: torch.Tensor,
    sampling_sigmas: torch.Tensor,
    scaling: NoiseScaling,
    on_step: Optional[Callable[[int, int, torch.Tensor, torch.Tensor], None]] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Invert along a sampling schedule (descending, usually ending at 0).

    Returns (sigmas ascending, float64; noise relative to the clean latent per sigma, float32).
    Raises NonFiniteInversion naming the first step whose result is not finite.
    on_step(step, total, latent, denoised) reports progress after each model call.
    """
    sigmas = inversion_sigmas(sampling_sigmas)
    if sigmas.numel() < 1:
        raise ValueError("inversion needs at least one positive sigma")
    clean = clean_model_latent.float()
    latent = scaling.mix(float(sigmas[0]), clean, torch.zeros_like(clean))
    trajectory = [torch.zeros_like(clean)]
    total = sigmas.numel()
    for step in range(total - 1):
        sigma, next_sigma = float(sigmas[step]), float(sigmas[step + 1])
        denoised = denoise(latent, sigma).float()
        latent = scaling.mix(next_sigma, denoised, scaling.noise_of(sigma, latent, denoised))
        trajectory.append(scaling.noise_of(next_sigma, latent, clean))
        if not bool(torch.isfinite(trajectory[-1]).all()):
            # Stop at the first broken step: a NaN trajectory would black out every image it styles.
            raise NonFiniteInversion(
                f"the inversion went non-finite (NaN or inf) at step {step + 1} of {total - 1} (sigma {sigma:.4g} -> "
                f"{next_sigma:.4g}): the model's prediction there is broken"
            )
        if on_step is not None:
            on_step(step + 1, total - 1, latent, denoised)
    return sigmas, torch.cat(trajectory, dim=0)
