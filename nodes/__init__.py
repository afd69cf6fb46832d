"""Thin ComfyUI node classes over stylealign_core (V3 schema)."""

from __future__ import annotations

from typing_extensions import override

from comfy_api.latest import ComfyExtension, io

from .invert_node import StyleAlignedInvertReference
from .patch_node import StyleAlignedPatch
from .prompt_batch_node import StyleAlignedPromptBatch
from .references_node import StyleAlignedReferences
from .reference_file_nodes import StyleAlignedLoadReference, StyleAlignedSaveReference, register_reference_folder
from .set_score_node import StyleAlignedSetScore
from .set_chunk_nodes import StyleAlignedAssembleSet, StyleAlignedGatherPart, StyleAlignedGatherSet, StyleAlignedSplitSet


class StyleAlignedExtension(ComfyExtension):
    @override
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [
            StyleAlignedPatch,
            StyleAlignedPromptBatch,
            StyleAlignedInvertReference,
            StyleAlignedSaveReference,
            StyleAlignedLoadReference,
            StyleAlignedSetScore,
            StyleAlignedSplitSet,
            StyleAlignedGatherSet,
            StyleAlignedGatherPart,
            StyleAlignedAssembleSet,
            StyleAlignedReferences,
        ]


async def comfy_entrypoint() -> StyleAlignedExtension:
    # Here rather than in ComfyExtension.on_load, which not every host version calls.
    register_reference_folder()
    return StyleAlignedExtension()
