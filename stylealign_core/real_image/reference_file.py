"""A style reference as a .safetensors file: tensors plus string metadata, never pickle.

Tensors: clean_latent (1, C, H, W), sigmas (n,) ascending, noise (n, C, H, W).
Metadata: format marker and version, model family, latent shape, prompt, and how it was made.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..errors import StyleAlignedError
from .reference_trajectory import ReferenceTrajectory

FORMAT_MARKER = "comfyui-stylealigned.reference"
FORMAT_VERSION = "1"
TENSOR_NAMES = ("clean_latent", "sigmas", "noise")


def save_reference(reference: ReferenceTrajectory, path: Path) -> None:
    metadata = {str(key): str(value) for key, value in reference.metadata.items()}
    metadata.update(
        format=FORMAT_MARKER,
        format_version=FORMAT_VERSION,
        latent_shape=json.dumps(list(reference.latent_shape)),
    )
    tensors = {
        "clean_latent": reference.clean_latent.detach().float().cpu().contiguous(),
        "sigmas": reference.sigmas.detach().double().cpu().contiguous(),
        "noise": reference.noise.detach().float().cpu().contiguous(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=metadata)


def load_reference(path: Path) -> ReferenceTrajectory:
    """Read and check a reference file; StyleAlignedError says what is wrong with it."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = dict(handle.metadata() or {})
            names = set(handle.keys())
            if metadata.get("format") != FORMAT_MARKER:
                raise StyleAlignedError(
                    f"'{path.name}' is a .safetensors file but not a StyleAligned reference (a model or other data?)."
                )
            if metadata.get("format_version") != FORMAT_VERSION:
                raise StyleAlignedError(
                    f"'{path.name}' is a StyleAligned reference of format version {metadata.get('format_version')}; "
                    f"this pack reads version {FORMAT_VERSION}. Update the pack or re-create the reference."
                )
            missing = [name for name in TENSOR_NAMES if name not in names]
            if missing:
                raise StyleAlignedError(f"'{path.name}' lacks the tensors {', '.join(missing)}: the file is damaged.")
            tensors = {name: handle.get_tensor(name) for name in TENSOR_NAMES}
    except (SafetensorError, OSError, ValueError) as error:
        if isinstance(error, StyleAlignedError):
            raise
        raise StyleAlignedError(f"'{path.name}' cannot be read as a .safetensors file ({error}).") from error
    broken = [name for name in TENSOR_NAMES if not bool(torch.isfinite(tensors[name]).all())]
    if broken:
        raise StyleAlignedError(
            f"'{path.name}' holds non-finite values (NaN or inf) in {', '.join(broken)}: the file is damaged or was "
            f"made by a failed inversion. Invert the image again."
        )
    for key in ("format", "format_version", "latent_shape"):
        metadata.pop(key, None)
    try:
        return ReferenceTrajectory(metadata=metadata, **tensors)
    except ValueError as error:
        raise StyleAlignedError(f"'{path.name}' has inconsistent tensors: {error}.") from error
