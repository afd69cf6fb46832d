"""A real image as the style reference: its clean latent and its noise trajectory over sigma.

Inversion yields, for ascending sigmas s_0 < s_1 < ... < s_n, the noise n_i such that the reference's
noisy latent at s_i is a(s_i) * clean + b(s_i) * n_i. During sampling, at any sigma of any scheduler,
the reference slot is put on that trajectory (noise interpolated linearly in sigma, clamped at the ends)
and its denoised prediction is the clean latent, so every sampler ends the slot on the clean latent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..batch_layout import NODE_NAME, BatchLayout
from ..errors import StyleAlignedError
from .noise_scaling import NoiseScaling


@dataclass
class ReferenceTrajectory:
    clean_latent: torch.Tensor  # (1, C, H, W), or (1, C, T, H, W) for video-shaped latents, in the VAE's latent space
    sigmas: torch.Tensor  # (n + 1,) ascending, float64
    noise: torch.Tensor  # (n + 1, C, ...) float32, the model-space noise at each sigma
    metadata: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.clean_latent.ndim not in (4, 5) or self.clean_latent.shape[0] != 1:
            raise ValueError("the clean latent must be one image (1, C, H, W) or (1, C, T, H, W)")
        if (
            self.sigmas.ndim != 1 or self.sigmas.numel() < 1 or self.noise.ndim != self.clean_latent.ndim
            or self.noise.shape[0] != self.sigmas.shape[0]
        ):
            raise ValueError("one noise tensor per sigma is required")
        if self.noise.shape[1:] != self.clean_latent.shape[1:]:
            raise ValueError("noise and clean latent shapes differ")
        if not bool(torch.isfinite(self.sigmas).all()) or bool((self.sigmas <= 0).any()) or bool((self.sigmas.diff() <= 0).any()):
            raise ValueError("sigmas must be positive, finite and ascending")
        broken = self.non_finite_tensors()
        if broken:
            raise ValueError(f"{' and '.join(broken)} hold non-finite values (NaN or inf)")

    def non_finite_tensors(self) -> list[str]:
        """The names of the tensors holding NaN or inf (a NaN reference would black out every image it styles)."""
        tensors = {"clean_latent": self.clean_latent, "sigmas": self.sigmas, "noise": self.noise}
        return [name for name, tensor in tensors.items() if not bool(torch.isfinite(tensor).all())]

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return tuple(self.clean_latent.shape[1:])

    def noise_at(self, sigma: float) -> torch.Tensor:
        """Noise at `sigma`, linear in sigma between the two nearest inverted steps."""
        sigmas = self.sigmas
        if sigma <= float(sigmas[0]):
            return self.noise[0]
        if sigma >= float(sigmas[-1]):
            return self.noise[-1]
        upper = int(torch.searchsorted(sigmas, torch.tensor(float(sigma), dtype=sigmas.dtype), right=False))
        lower = upper - 1
        low_sigma, high_sigma = float(sigmas[lower]), float(sigmas[upper])
        weight = (sigma - low_sigma) / (high_sigma - low_sigma)
        return torch.lerp(self.noise[lower], self.noise[upper], weight)


class HeldReference:
    """Holds the reference slot of every model call on a trajectory (see the module docstring).

    One implementation for every route: a route's model-call logic calls hold_input on the call's input
    (the noisy latents, before the model) and hold_output on its denoised prediction.
    """

    def __init__(self, trajectory: ReferenceTrajectory, clean_model_latent: torch.Tensor, scaling: NoiseScaling) -> None:
        # Checked again here: a reference object may have been changed after it was made or loaded.
        broken = trajectory.non_finite_tensors()
        if broken or not bool(torch.isfinite(clean_model_latent).all()):
            raise StyleAlignedError(
                f"{NODE_NAME}: reference holds non-finite values (NaN or inf) in {', '.join(broken) or 'its latent'}, "
                f"which would black out the set. Invert the image again (StyleAlignedInvertReference) or load "
                f"another reference."
            )
        self.trajectory = trajectory
        self.clean_model_latent = clean_model_latent.float()
        self.scaling = scaling
        self._on_device: dict[tuple, torch.Tensor] = {}

    def clean_like(self, like: torch.Tensor) -> torch.Tensor:
        key = (like.device, like.dtype)
        if key not in self._on_device:
            self._on_device[key] = self.clean_model_latent[0].to(device=like.device, dtype=like.dtype)
        return self._on_device[key]

    def input_at(self, sigma: float, like: torch.Tensor) -> torch.Tensor:
        """(C, ...) model input of the reference slot at `sigma`."""
        noise = self.trajectory.noise_at(sigma).to(device=like.device, dtype=torch.float32)
        return self.scaling.mix(sigma, self.clean_like(like).float(), noise).to(like.dtype)

    def hold_input(self, x: torch.Tensor, sigmas: torch.Tensor, layout: BatchLayout) -> torch.Tensor:
        """A copy of the model call's input `x` (rows, C, ...) whose reference rows are the trajectory at
        each row's sigma (`sigmas`: one per row, or one for all). Raises StyleAlignedError when the
        reference latent and the sampled latents differ in size."""
        if tuple(x.shape[1:]) != tuple(self.clean_model_latent.shape[1:]):
            raise StyleAlignedError(
                f"{NODE_NAME}: the reference latent (input reference) is {_size(self.clean_model_latent.shape[1:])} but the sampled "
                f"latents are {_size(x.shape[1:])}. Encode the reference image at the size of the latent batch (or "
                f"scale it), or make the empty latents the reference's size."
            )
        x = x.clone()
        row_sigmas = sigmas.detach().float().cpu().reshape(-1)
        if row_sigmas.numel() == 1:
            row_sigmas = row_sigmas.expand(x.shape[0])
        for row in layout.reference_rows():
            x[row] = self.input_at(float(row_sigmas[row]), x)
        return x

    def hold_output(self, output: torch.Tensor, layout: BatchLayout) -> torch.Tensor:
        """The model call's denoised prediction with the reference rows set to the clean latent (in place),
        so any sampler ends the slot on the image."""
        output[layout.reference_rows()] = self.clean_like(output)
        return output


def _size(shape: torch.Size) -> str:
    channels, *spatial = shape
    return f"{channels} channels at " + "x".join(str(d) for d in spatial) + " (latent pixels)"
