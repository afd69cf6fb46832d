"""Which of q, k, v a route normalises and whether the reference's tokens are appended: the same for both
routes (the UNet's attn1 patch and the transformer route's attention override), read off the options."""

from __future__ import annotations

from dataclasses import dataclass

from .options import StyleAlignedOptions


@dataclass(frozen=True)
class ShareFlags:
    """Which outputs are normalised and whether the reference's tokens are appended to k and v."""

    adain_queries: bool
    adain_keys: bool
    adain_values: bool
    share: bool

    @property
    def any_adain(self) -> bool:
        return self.adain_queries or self.adain_keys or self.adain_values

    @property
    def buffers(self) -> tuple[bool, bool, bool]:
        """(A_PLAIN, A_SHARED, X_SHARED): which buffers the outputs need (maths/fused_adain.py)."""
        plain = self.adain_queries or (not self.share and (self.adain_keys or self.adain_values))
        a_shared = self.share and (self.adain_keys or self.adain_values)
        x_shared = self.share and not (self.adain_keys and self.adain_values)
        return plain, a_shared, x_shared


def share_flags(options: StyleAlignedOptions) -> ShareFlags:
    # A reference strength of 0 gives the reference's tokens no weight: nothing is appended.
    return ShareFlags(
        adain_queries=options.adain_queries,
        adain_keys=options.adain_keys,
        adain_values=options.adain_values,
        share=options.share_attention and options.reference_strength > 0,
    )
