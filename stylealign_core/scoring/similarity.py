"""Cosine similarity of image embeddings within a set, and the means the paper reports.

Set consistency (Hertz et al., CVPR 2024, evaluation): the mean cosine similarity of the image embeddings
over all unordered pairs of images of a set. Reference similarity: the mean cosine similarity of each
other image to the reference image. Everything in float32 whatever the encoder's dtype.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Below this norm an embedding is treated as zero (its similarities are 0) instead of dividing by ~0.
NORM_EPS = 1e-12


def pooled_embeddings(image_embeds: torch.Tensor) -> torch.Tensor:
    """One float32 vector per image. ComfyUI's CLIP (ViT-L/H/G) and DINOv2 encoders give (images, width);
    SigLIP has no pooling head there and gives its final tokens (images, tokens, width): averaged over tokens."""
    if image_embeds.ndim == 2:
        return image_embeds.detach().float()
    if image_embeds.ndim == 3:
        return image_embeds.detach().float().mean(dim=1)
    raise ValueError(f"image embeddings of shape {tuple(image_embeds.shape)}: expected (images, width) or (images, tokens, width)")


def cosine_matrix(embeddings: torch.Tensor) -> torch.Tensor:
    """(images, images) float32 matrix of cosine similarities of the rows of `embeddings`."""
    rows = embeddings.float()
    unit = rows / rows.norm(dim=1, keepdim=True).clamp_min(NORM_EPS)
    return (unit @ unit.T).clamp(-1.0, 1.0)


def pair_mean(matrix: torch.Tensor) -> float:
    """Mean over all unordered pairs i < j (the diagonal, each image with itself, is left out)."""
    count = matrix.shape[0]
    if count < 2:
        raise ValueError("a set of fewer than two images has no pairs")
    upper = torch.triu_indices(count, count, offset=1)
    return float(matrix[upper[0], upper[1]].mean())


def reference_mean(matrix: torch.Tensor, reference_index: int) -> float:
    """Mean similarity of every other image to the reference."""
    count = matrix.shape[0]
    if count < 2 or not 0 <= reference_index < count:
        raise ValueError(f"reference {reference_index} in a set of {count} images")
    others = [i for i in range(count) if i != reference_index]
    return float(matrix[reference_index, others].mean())


@dataclass(frozen=True)
class SetScore:
    matrix: torch.Tensor          # (images, images) float32 cosine similarities
    set_consistency: float        # mean over unordered pairs
    reference_similarity: float   # mean of the others to the reference
    reference_index: int

    @property
    def image_count(self) -> int:
        return int(self.matrix.shape[0])


def score_set(embeddings: torch.Tensor, reference_index: int) -> SetScore:
    """Both scores of one set from its (images, width) embeddings."""
    matrix = cosine_matrix(embeddings)
    return SetScore(matrix, pair_mean(matrix), reference_mean(matrix, reference_index), reference_index)
