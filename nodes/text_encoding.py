"""Text -> conditioning exactly as the host's CLIPTextEncode does it."""

from __future__ import annotations

import torch

from ..stylealign_core import StyleAlignedError


def encode_prompt(clip, text: str, node_name: str) -> tuple[torch.Tensor, dict]:
    if clip is None:
        raise StyleAlignedError(
            f"{node_name}: the clip input is empty; the checkpoint may have no text encoder. Load one with a CLIP loader."
        )
    conditioning = clip.encode_from_tokens_scheduled(clip.tokenize(text))
    if len(conditioning) != 1:
        raise StyleAlignedError(
            f"{node_name}: the text encoder returned {len(conditioning)} scheduled conditionings (CLIP hooks); "
            f"remove the hooks from the clip input."
        )
    cond, extras = conditioning[0]
    return cond, dict(extras)
