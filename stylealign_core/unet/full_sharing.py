"""Full attention sharing (the authors' "full_attention_share" baseline) on the UNet route.

Every image of a conditioning chunk attends to the keys and values of every image of that chunk, the
reference included (so the reference changes too): the authors' processor rearranges the batch
'(chunks images) tokens channels -> chunks (images tokens) channels', runs plain self-attention on each
chunk as one long sequence and rearranges back. No AdaIN and no reference strength take part (as in their
code). Done in the attention override on the projected q/k/v, so nothing is copied per image: the
attention itself grows with the square of the images per chunk.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..batch_layout import BatchLayout


def chunk_as_one_sequence(tokens: torch.Tensor, layout: BatchLayout) -> torch.Tensor:
    """(rows, L, C) -> (chunks, images * L, C), images in batch order."""
    return tokens.reshape(layout.chunks, layout.images_per_chunk * tokens.shape[1], tokens.shape[2])


def fully_shared_attention(attention: Callable, q, k, v, heads, layout: BatchLayout, **kwargs) -> torch.Tensor:
    """attention(q, k, v, heads, **kwargs) with every chunk as one sequence; output back as (rows, L, C)."""
    out = attention(chunk_as_one_sequence(q, layout), chunk_as_one_sequence(k, layout), chunk_as_one_sequence(v, layout), heads, **kwargs)
    return out.reshape(q.shape[0], q.shape[1], out.shape[-1])


def can_share_fully(q, k, v, layout: BatchLayout, kwargs: dict) -> bool:
    """Only the untiled (rows, L, C) layout with no mask: anything else another patch made is left alone."""
    return (
        not kwargs.get("skip_reshape", False) and kwargs.get("mask") is None and q.dim() == 3
        and q.shape[0] == k.shape[0] == v.shape[0] == layout.rows and q.shape[1] == k.shape[1] == v.shape[1]
    )
