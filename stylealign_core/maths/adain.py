"""Adaptive instance normalisation (AdaIN) with float32 statistics.

AdaIN(x, y) = sigma(y) * (x - mu(x)) / sigma(x) + mu(y), statistics per channel over the tokens of one
image. It is applied as one affine pass, x * scale + shift, so a tensor is read once for its statistics
and once for the result.
"""

from __future__ import annotations

import torch

# Added to the variance before the square root: a constant feature map (variance 0) then gets a finite
# scale and maps onto the reference mean instead of producing inf/NaN.
VARIANCE_EPS = 1e-5


def needs_grad(*tensors: torch.Tensor) -> bool:
    """Whether autograd records operations on these tensors (then no out= and no Triton kernels)."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def channel_stats(tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation over the token axis (-2), in float32, keeping that axis.

    The population variance (correction 0) is used so a one-token feature map has variance 0, not NaN.
    """
    mean, variance = channel_moments(tokens)
    return mean, (variance + VARIANCE_EPS).sqrt()


def channel_moments(tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and population variance over the token axis (-2), in float32, keeping that axis.

    On the CPU the variance is taken in two passes (mean, then mean of squared deviations): as exact as
    var_mean, and several times faster there than its reduction over a non-innermost axis.
    """
    values = tokens.float()
    if values.device.type == "cpu":
        mean = values.mean(dim=-2, keepdim=True)
        deviations = values - mean
        squares = deviations.square() if needs_grad(deviations) else deviations.square_()
        variance = squares.mean(dim=-2, keepdim=True)
    else:
        variance, mean = torch.var_mean(values, dim=-2, keepdim=True, correction=0)
    return mean, variance


def adain_affine(
    mean: torch.Tensor, std: torch.Tensor, reference_mean: torch.Tensor, reference_std: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and shift (float32) so that x * scale + shift == AdaIN(x, reference).

    For the reference itself scale is exactly 1 and shift exactly 0, so it passes through bit-identical.
    """
    scale = reference_std / std
    shift = reference_mean - mean * scale
    return scale, shift


def apply_affine(tokens: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """tokens * scale + shift in float32, returned in the tokens' dtype.

    One pass: the arithmetic runs in float32 (type promotion with the float32 scale and shift) and is
    rounded once into a tensor of the tokens' dtype, with no float32 copy of the input or the result.
    """
    if needs_grad(tokens, scale, shift):  # out= tensors cannot take part in autograd
        return torch.addcmul(shift, tokens.float(), scale).to(tokens.dtype)
    return torch.addcmul(shift, tokens, scale, out=torch.empty_like(tokens))
