"""Thin ComfyUI node classes over stylealign_core (V3 schema)."""

from __future__ import annotations

from typing_extensions import override

from comfy_api.latest import ComfyExtension, io

from .patch_node import StyleAlignedPatch


class StyleAlignedExtension(ComfyExtension):
    @override
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [StyleAlignedPatch]


async def comfy_entrypoint() -> StyleAlignedExtension:
    return StyleAlignedExtension()
