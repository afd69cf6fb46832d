"""The one random-tensor writer of the tiny test models: deterministic, well-scaled random values for a
model's tensors, and an atomic, byte-stable safetensors write.

Values (one generator, one draw per tensor in the order given): norm scales 1 + 0.1 N(0, 1); matrices and
convolutions N(0, 1 / fan_in), fan_in the product of the shape past the first axis; everything else
(biases) bias_scale * N(0, 1). Each caller says which tensors are norm scales and matrices, so the files
and models built before this module stay the same to the bit. Imports nothing of ComfyUI.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Callable


def is_matrix(shape) -> bool:
    return len(shape) >= 2


def random_values(
    shapes: dict, seed: int, is_norm_scale: Callable[[str, tuple], bool], is_matrix: Callable[[tuple], bool] = is_matrix,
    bias_scale: float = 0.02, sort_keys: bool = True,
) -> dict:
    """name -> float32 tensor for every name of `shapes` (name -> shape), drawn in sorted name order (or
    in the order given)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    values = {}
    for key in sorted(shapes) if sort_keys else shapes:
        shape = tuple(shapes[key])
        if is_norm_scale(key, shape):
            values[key] = 1.0 + 0.1 * torch.randn(shape, generator=generator)
        elif is_matrix(shape):
            values[key] = torch.randn(shape, generator=generator) / math.sqrt(math.prod(shape[1:]))
        else:
            values[key] = bias_scale * torch.randn(shape, generator=generator)
    return values


def float16_tensors(values: dict) -> dict:
    import torch

    return {key: value.to(torch.float16).contiguous() for key, value in values.items()}


def write_safetensors(tensors: dict, path: Path, metadata: dict) -> None:
    """Write atomically (a partial file renamed into place). Keep metadata to one entry: safetensors writes
    several in a random order, and the file should be byte-stable."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + f".partial-{os.getpid()}")
    save_file(tensors, str(partial), metadata=metadata)
    partial.replace(path)
