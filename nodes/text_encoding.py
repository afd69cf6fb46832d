"""Text -> conditioning exactly as the host's CLIPTextEncode does it."""

from __future__ import annotations

from typing import Optional

import torch

from ..stylealign_core import StyleAlignedError


def _check_clip(clip, node_name: str) -> None:
    if clip is None:
        raise StyleAlignedError(
            f"{node_name}: the clip input is empty; the checkpoint may have no text encoder. Load one with a CLIP loader."
        )


def tokenize(clip, text: str, node_name: str):
    _check_clip(clip, node_name)
    return clip.tokenize(text)


def token_count(tokens) -> Optional[int]:
    """Tokens the encoder will see for one text (the longest of its encoders' token lists, padding included),
    counted before encoding; None for a tokenizer output of another shape."""
    try:
        counts = [sum(len(chunk) for chunk in chunks) for chunks in tokens.values()]
    except (AttributeError, TypeError):
        return None
    return max(counts) if counts else None


def encode_tokens(clip, tokens, node_name: str) -> tuple[torch.Tensor, dict]:
    conditioning = clip.encode_from_tokens_scheduled(tokens)
    if len(conditioning) != 1:
        raise StyleAlignedError(
            f"{node_name}: the text encoder returned {len(conditioning)} scheduled conditionings (CLIP hooks); "
            f"remove the hooks from the clip input."
        )
    cond, extras = conditioning[0]
    return cond, dict(extras)


def encode_prompt(clip, text: str, node_name: str) -> tuple[torch.Tensor, dict]:
    return encode_tokens(clip, tokenize(clip, text, node_name), node_name)
