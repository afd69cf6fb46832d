"""How a model family mixes a clean latent and noise at a sigma: x = a(sigma) * latent + b(sigma) * noise.

ComfyUI's `model_sampling.noise_scaling(sigma, noise, latent)` is linear in noise and latent for every
prediction type (eps and v: a = 1, b = sigma; flow: a = 1 - sigma, b = sigma). Reading a and b off that
callable keeps the inversion and the reference slot correct for eps, v and flow models alike without
naming any of them here.
"""

from __future__ import annotations

from typing import Callable

import torch

NoiseScalingFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class NoiseScaling:
    def __init__(self, noise_scaling: NoiseScalingFn) -> None:
        self._noise_scaling = noise_scaling

    def coefficients(self, sigma: float) -> tuple[float, float]:
        """(a, b) at one sigma, in float64 for the arithmetic around them."""
        sigma_tensor = torch.tensor([float(sigma)], dtype=torch.float64)
        one = torch.ones(1, dtype=torch.float64)
        zero = torch.zeros(1, dtype=torch.float64)
        a = float(self._noise_scaling(sigma_tensor, zero, one))
        b = float(self._noise_scaling(sigma_tensor, one, zero))
        return a, b

    def mix(self, sigma: float, clean: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        a, b = self.coefficients(sigma)
        return clean * a + noise * b

    def noise_of(self, sigma: float, noisy: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
        """The noise that, mixed with `clean` at `sigma`, gives `noisy` (b > 0 for every sigma > 0)."""
        a, b = self.coefficients(sigma)
        return (noisy - clean * a) / b
