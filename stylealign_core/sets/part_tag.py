"""A part's tag: an image that leads a participant's images and says which part of which set they are.

Between participants only images travel (ComfyUI-Distributed sends a worker's images to the master as 8-bit
PNGs), so what the master needs to put the set back together travels as an image too. Each byte of the tag
is one grey pixel at (byte + 0.25) / 255, which both 8-bit conversions in use (truncating and rounding) turn
back into the same byte; a magic word and a CRC tell a tag from a picture.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import torch

MAGIC = b"SApt"
VERSION = 1
_FIELDS = struct.Struct(">BHHHHHH")  # version, set_size, reference_index, images_per_batch, part_index, part_count, image_count
TAG_BYTES = len(MAGIC) + _FIELDS.size + 4
FIELD_MAX = 0xFFFF
BACKGROUND = 0.5  # the pixels after the payload: plain grey


@dataclass(frozen=True)
class PartTag:
    set_size: int
    reference_index: int
    images_per_batch: int
    part_index: int
    part_count: int
    image_count: int  # the images that follow the tag

    def same_set(self, other: "PartTag") -> bool:
        return (self.set_size, self.reference_index, self.images_per_batch, self.part_count) == (
            other.set_size, other.reference_index, other.images_per_batch, other.part_count)

    def settings(self) -> str:
        return (f"a set of {self.set_size} images, reference_index {self.reference_index}, images_per_batch "
                f"{self.images_per_batch}, part_count {self.part_count}")


def encode_tag(tag: PartTag, height: int, width: int, channels: int = 3) -> torch.Tensor:
    """The tag as one image (1, height, width, channels), float32 in [0, 1]."""
    fields = (VERSION, tag.set_size, tag.reference_index, tag.images_per_batch, tag.part_index, tag.part_count,
              tag.image_count)
    if any(not 0 <= value <= FIELD_MAX for value in fields):
        raise ValueError(f"a part tag holds numbers up to {FIELD_MAX}: {tag}")
    if height * width < TAG_BYTES:
        raise ValueError(f"a part tag needs {TAG_BYTES} pixels; the images are {height}×{width}")
    body = MAGIC + _FIELDS.pack(*fields)
    payload = body + struct.pack(">I", zlib.crc32(body))
    pixels = torch.full((height * width,), BACKGROUND, dtype=torch.float32)
    pixels[:len(payload)] = (torch.tensor(list(payload), dtype=torch.float32) + 0.25) / 255.0
    return pixels.view(1, height, width, 1).expand(1, height, width, channels).contiguous()


def decode_tag(image: torch.Tensor) -> PartTag | None:
    """The tag an image (height, width, channels) holds, or None when it is not a tag."""
    flat = image.reshape(-1, image.shape[-1])
    if flat.shape[0] < TAG_BYTES:
        return None
    head = flat[:TAG_BYTES].float()
    # (byte + 0.25) / 255 as float, or byte / 255 after an 8-bit round trip: both round back to the byte.
    values = torch.floor(head * 255.0 + 0.5).clamp(0, 255).to(torch.int64)
    if not bool((values == values[:, :1]).all()):
        return None
    payload = bytes(values[:, 0].tolist())
    body, checksum = payload[:-4], payload[-4:]
    if not body.startswith(MAGIC) or struct.unpack(">I", checksum)[0] != zlib.crc32(body):
        return None
    version, *fields = _FIELDS.unpack(body[len(MAGIC):])
    if version != VERSION:
        return None
    return PartTag(*fields)
