"""A real image as the reference without inversion: the slot held on the image noised afresh.

AlignedGen's appendix holds the reference slot at every step on x_sigma = a(sigma) * x_0 + b(sigma) * eps
(the model's own noise scaling, see noise_scaling.py) with one fixed, seeded eps, instead of on an
inverted trajectory. No pass over the schedule is needed, any sampler works, and the slot still decodes
to the image (its denoised prediction is held on x_0 exactly as for an inverted reference).

It is stored as a ReferenceTrajectory with a single sigma: noise_at() is then eps at every sigma, so
holding, saving and loading are the same code as for an inverted reference.
"""

from __future__ import annotations

import torch

from .reference_trajectory import ReferenceTrajectory

METHOD_KEY = "method"
INVERSION = "inversion"
NOISED = "noised"
METHODS = (INVERSION, NOISED)


def seeded_noise(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Standard normal noise of `shape` (float32, CPU) from `seed`, the same on every machine."""
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    return torch.randn(shape, generator=generator, dtype=torch.float32)


def noised_reference(clean_latent: torch.Tensor, seed: int, sigma_max: float, metadata: dict[str, str]) -> ReferenceTrajectory:
    """A reference whose slot is noise_scaling(sigma, eps, x_0) at every sigma, eps drawn from `seed`.

    sigma_max only labels the one stored sigma (it must be positive); the noise is the same at every sigma.
    """
    clean = clean_latent.detach().float().cpu()
    noise = seeded_noise(tuple(clean.shape), seed)
    return ReferenceTrajectory(
        clean_latent=clean,
        sigmas=torch.tensor([float(sigma_max)], dtype=torch.float64),
        noise=noise,
        metadata={**metadata, METHOD_KEY: NOISED, "noise_seed": str(int(seed))},
    )
