"""AdaIN on the projected queries, keys and values (the authors' processor), for the UNet route.

The authors' code normalises the outputs of to_q / to_k (and to_v when asked), per channel over the tokens
of one image, against the reference's: AdaIN(W x_t, W x_r). The attn1 patch only sees the projection
inputs x, and per-channel standardisation does not commute with the projection W, so this is applied by
the attention override, which receives the projected tensors: the attn1 patch only appends the
reference's tokens to the k/v inputs and leaves a note (ProjectedAdain) for the layer's attention call.

Layout as the UNet hands it to attention: (rows, tokens, channels), heads not split (per-head channels
are channels of the inner dim, so per-channel statistics are the same). Queries another patch split into
image-major tiles, (rows * tiles, tokens / tiles, channels), regroup to the same per-image statistics.
Keys and values hold [own tokens ; appended reference tokens]: only the own tokens are normalised, the
appended ones are the reference's projected tokens (its AdaIN against itself is the identity). With
several references the targets go to the references' weighted mixture (maths/reference_mixture.py). Statistics
in float32 (maths.adain); the reference rows come out bit-identical.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..batch_layout import BatchLayout
from ..maths.adain import needs_grad
from .reference_affine import affine_to_references


@dataclass(frozen=True)
class ProjectedAdain:
    """Which projected tensors a layer's attention call normalises, and the call's batch layout."""

    layout: BatchLayout
    queries: bool
    keys: bool
    values: bool

    @property
    def any(self) -> bool:
        return self.queries or self.keys or self.values


def adain_own_tokens(tokens: torch.Tensor, own_tokens: int, layout: BatchLayout) -> torch.Tensor:
    """AdaIN of every image's first `own_tokens` tokens (axis 1) to its chunk's reference(s). In place when
    autograd allows: the projected tensors are fresh outputs of to_q/to_k/to_v, used only by attention."""
    own = tokens[:, :own_tokens]
    shape = (layout.chunks, layout.images_per_chunk, -1, tokens.shape[-1])
    try:
        grouped = own.view(shape)
    except RuntimeError:  # not viewable (an odd stride from another patch): normalise a copy
        grouped = own.reshape(shape)
    scale, shift = affine_to_references(grouped, layout)
    if needs_grad(tokens, scale, shift) or grouped.data_ptr() != own.data_ptr() or grouped._base is None:
        normalised = torch.addcmul(shift, grouped.float(), scale).to(tokens.dtype).reshape(own.shape)
        return torch.cat([normalised, tokens[:, own_tokens:]], dim=1) if own_tokens < tokens.shape[1] else normalised
    # Float32 arithmetic (type promotion with the float32 scale and shift), rounded once into the
    # tensor's dtype, written over the own tokens.
    torch.addcmul(shift, grouped, scale, out=grouped)
    return tokens
