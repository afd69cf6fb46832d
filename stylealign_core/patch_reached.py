"""The once-per-model-call guard "the patch never ran", for both routes.

A model whose blocks never reach the route's patch (another node replaced the blocks or the attention
override) must not silently give unaligned images: the model call raises, naming the node and the cause.
"""

from __future__ import annotations

from .batch_layout import NODE_NAME
from .errors import StyleAlignedError


class PatchReached:
    """until_first_reached: only calls before the first one that reached the patch must reach it (the
    transformer route: step-caching packs such as TeaCache legitimately skip the blocks on later steps);
    otherwise every model call must (the UNet route)."""

    def __init__(self, until_first_reached: bool) -> None:
        self.until_first_reached = until_first_reached
        self._reached_once = False

    def check(self, reached: bool, cause: str, required: bool = True) -> None:
        """Record whether this model call reached the patch; raise StyleAlignedError(cause) when it had to."""
        self._reached_once = self._reached_once or reached
        if not required or reached or (self.until_first_reached and self._reached_once):
            return
        raise StyleAlignedError(f"{NODE_NAME}: {cause}")
