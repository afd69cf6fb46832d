"""Embeddings of pictures an encoder has already seen, so that re-scoring a graph encodes only new pictures.

Tuning StyleAligned means running the graph again and again while the comparison set (the same graph
without the patch) and the reference stay the same picture for picture: those are looked up, not encoded
again. Keyed by the encoder object (held weakly: a model the loader drops takes its entries with it) and
by a hash of each picture's bytes, shape and dtype; exact copies within one batch are encoded once.
"""

from __future__ import annotations

import hashlib
import weakref
from collections import OrderedDict
from typing import Callable

import torch

MAX_PICTURES_PER_ENCODER = 1024  # ~4 MiB of 1024-wide float32 embeddings


def picture_key(picture: torch.Tensor) -> str:
    data = picture.detach().contiguous().cpu()
    digest = hashlib.blake2b(data.view(torch.uint8).numpy().tobytes(), digest_size=20).hexdigest()
    return f"{tuple(data.shape)}:{data.dtype}:{digest}"


class EmbeddingCache:
    def __init__(self, max_pictures_per_encoder: int = MAX_PICTURES_PER_ENCODER):
        self.max_pictures_per_encoder = max_pictures_per_encoder
        self._by_encoder: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def embeddings(self, encoder, pictures: torch.Tensor, encode: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """(pictures, width) embeddings; `encode` gets a batch of the pictures not seen yet (each once) and
        returns one float32 row per picture."""
        known = self._by_encoder.setdefault(encoder, OrderedDict())
        keys = [picture_key(picture) for picture in pictures]
        missing: dict[str, int] = {}
        for index, key in enumerate(keys):
            if key not in known and key not in missing:
                missing[key] = index
        found = {key: known[key] for key in keys if key in known}
        if missing:
            rows = encode(pictures[list(missing.values())])
            found.update(zip(missing, rows.detach().float().clone()))
        for key in keys:  # most recently used last
            known[key] = found[key]
            known.move_to_end(key)
        while len(known) > self.max_pictures_per_encoder:
            known.popitem(last=False)
        return torch.stack([found[key] for key in keys])
