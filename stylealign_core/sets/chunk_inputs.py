"""One chunk's share of the set's inputs: latent rows (with their noise index), prompt rows, hint rows.

What the host repeats to the batch (a batch of 1) stays as it is; what has one row per image of the set is
cut to the chunk's rows. Control objects (ControlNet, T2I-Adapter, a chain of them) are copied, never
changed: the copy gets the chunk's hint rows and a copy of the rest of the chain. The host's control objects
are used through what they all have (copy(), cond_hint_original, previous_controlnet), so no ComfyUI import.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ..errors import StyleAlignedError

Conditioning = list  # ComfyUI's [[cond tensor, {extras}], ...]


def _take_rows(tensor: torch.Tensor, rows: Sequence[int]) -> torch.Tensor:
    return tensor[torch.tensor(list(rows), dtype=torch.long, device=tensor.device)]


def latent_rows(latent: dict, rows: Sequence[int]) -> dict:
    """The chunk's latent. Its batch_index keeps each image's place in the set, so the host draws for it the
    same starting noise as for the whole set (comfy.sample.prepare_noise)."""
    samples = latent["samples"]
    set_size = int(samples.shape[0])
    chunk = {key: value for key, value in latent.items() if key not in ("samples", "batch_index", "noise_mask")}
    chunk["samples"] = _take_rows(samples, rows)
    noise_index = list(latent.get("batch_index", range(set_size)))
    chunk["batch_index"] = [int(noise_index[row]) for row in rows]
    mask = latent.get("noise_mask")
    if mask is not None:
        # The host repeats a smaller mask batch over the images, row i taking mask i % m.
        chunk["noise_mask"] = mask if mask.shape[0] == 1 else _take_rows(mask, [row % mask.shape[0] for row in rows])
    return chunk


class ConditioningRows:
    """Cuts conditionings of one set to a chunk's rows; a control object used by several entries (positive
    and negative share one per Apply ControlNet) is copied once per chunk and shared again."""

    def __init__(self, set_size: int, rows: Sequence[int], node_name: str):
        self.set_size = set_size
        self.rows = list(rows)
        self.node_name = node_name
        self._control_copies: dict[int, Any] = {}

    def conditioning(self, conditioning: Conditioning, input_name: str) -> Conditioning:
        chunk = []
        for cond, extras in conditioning:
            cond = self._per_image(cond, input_name, "prompt")
            chunk_extras = {}
            for key, value in extras.items():
                if key == "control":
                    chunk_extras[key] = self._control(value, input_name)
                elif key == "pooled_output" and torch.is_tensor(value):
                    chunk_extras[key] = self._per_image(value, input_name, "pooled output")
                elif torch.is_tensor(value) and value.ndim > 0 and value.shape[0] == self.set_size:
                    chunk_extras[key] = _take_rows(value, self.rows)  # any other per-image entry (masks, concat latents)
                else:
                    chunk_extras[key] = value
            chunk.append([cond, chunk_extras])
        return chunk

    def _per_image(self, tensor: torch.Tensor, input_name: str, what: str) -> torch.Tensor:
        batch = int(tensor.shape[0])
        if batch == 1:
            return tensor
        if batch == self.set_size:
            return _take_rows(tensor, self.rows)
        raise StyleAlignedError(
            f"{self.node_name}: {input_name} has a {what} batch of {batch} for a set of {self.set_size} images. Give "
            f"one per image (StyleAligned Prompt Batch with its batch_size linked to the latent's batch_size) or one "
            f"for all images."
        )

    def _control(self, control, input_name: str):
        if control is None:
            return None
        if id(control) in self._control_copies:
            return self._control_copies[id(control)]
        copy = control.copy()
        hint = getattr(control, "cond_hint_original", None)
        if torch.is_tensor(hint):
            copy.cond_hint_original = self._per_image(hint, input_name, "ControlNet hint")
        extra = getattr(control, "extra_concat_orig", None)
        if extra:
            copy.extra_concat_orig = [
                _take_rows(item, self.rows) if torch.is_tensor(item) and item.shape[0] == self.set_size > 1 else item
                for item in extra
            ]
        copy.previous_controlnet = self._control(getattr(control, "previous_controlnet", None), input_name)
        self._control_copies[id(control)] = copy
        return copy
