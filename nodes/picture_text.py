"""Writes the text a core picture lists (stylealign_core.scoring.heatmap.TextItem) with Pillow, which
ComfyUI itself depends on, and returns a ComfyUI IMAGE batch of one."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont


@lru_cache(maxsize=None)
def _font(size: int):
    try:  # Pillow >= 10.1 with FreeType: its built-in scalable font
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # older Pillow: the fixed bitmap font (small but legible)
        return ImageFont.load_default()


def picture_to_image(pixels: torch.Tensor, texts) -> torch.Tensor:
    """(H, W, 3) uint8 pixels plus their TextItems -> (1, H, W, 3) float32 in 0..1."""
    canvas = Image.fromarray(pixels.cpu().numpy(), mode="RGB")
    draw = ImageDraw.Draw(canvas)
    for item in texts:
        font = _font(item.size)
        left, top, right, bottom = draw.textbbox((0, 0), item.text, font=font)
        x = item.x - left - ((right - left) / 2 if item.anchor == "middle" else 0)
        y = item.y - top - (bottom - top) / 2
        draw.text((round(x), round(y)), item.text, fill=tuple(item.colour), font=font)
    return torch.from_numpy(np.asarray(canvas, dtype=np.float32) / 255.0).unsqueeze(0)
