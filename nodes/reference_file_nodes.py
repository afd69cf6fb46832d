"""Save and load a StyleAligned reference as .safetensors (tensors + metadata, never pickle)."""

from __future__ import annotations

import os
from pathlib import Path

import folder_paths
from comfy_api.latest import io, ui

from ..stylealign_core import StyleAlignedError, load_reference, save_reference
from .reference_type import StyleAlignedReference
from .schema_features import search_words

REFERENCE_FOLDER = "stylealign"
REFERENCE_EXTENSION = ".safetensors"
SAVE_NODE_ID = "StyleAlignedSaveReference"
LOAD_NODE_ID = "StyleAlignedLoadReference"


def register_reference_folder() -> None:
    """models/stylealign for shared references, output/stylealign where the save node writes."""
    paths = [os.path.join(folder_paths.models_dir, REFERENCE_FOLDER), os.path.join(folder_paths.get_output_directory(), REFERENCE_FOLDER)]
    existing, extensions = folder_paths.folder_names_and_paths.get(REFERENCE_FOLDER, ([], set()))
    folder_paths.folder_names_and_paths[REFERENCE_FOLDER] = (
        existing + [path for path in paths if path not in existing],
        set(extensions) | {REFERENCE_EXTENSION},
    )


def reference_files() -> list[str]:
    return [name for name in folder_paths.get_filename_list(REFERENCE_FOLDER) if name.endswith(REFERENCE_EXTENSION)]


class StyleAlignedSaveReference(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=SAVE_NODE_ID,
            display_name="StyleAligned Save Reference",
            **search_words("save style", "style reference file"),
            category="model_patches/style_aligned",
            description="Writes a reference (from the invert node) as .safetensors under the output folder, to reuse or share.",
            inputs=[
                StyleAlignedReference.Input("reference", tooltip="The reference to save."),
                io.String.Input(
                    "filename_prefix", default=f"{REFERENCE_FOLDER}/reference",
                    tooltip="Path under the output folder; a counter is added. Files under output/stylealign appear in the load node.",
                ),
            ],
            outputs=[],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, reference, filename_prefix: str) -> io.NodeOutput:
        output_dir = folder_paths.get_output_directory()
        folder, filename, counter, subfolder, _ = folder_paths.get_save_image_path(filename_prefix, output_dir)
        path = Path(folder) / f"{filename}_{counter:05}_{REFERENCE_EXTENSION}"
        save_reference(reference, path)
        return io.NodeOutput(ui=ui.PreviewText(f"saved {os.path.relpath(path, output_dir)}"))


class StyleAlignedLoadReference(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=LOAD_NODE_ID,
            display_name="StyleAligned Load Reference",
            **search_words("load style", "style reference file"),
            category="model_patches/style_aligned",
            description="Loads a saved reference from models/stylealign or output/stylealign.",
            inputs=[
                io.Combo.Input(
                    "reference_name", options=reference_files(),
                    tooltip="A reference file (.safetensors) from models/stylealign or output/stylealign.",
                ),
            ],
            outputs=[StyleAlignedReference.Output(display_name="reference", tooltip="Connect to StyleAlignedPatch's reference input.")],
        )

    @classmethod
    def fingerprint_inputs(cls, reference_name: str):
        path = folder_paths.get_full_path(REFERENCE_FOLDER, reference_name)
        return os.path.getmtime(path) if path and os.path.exists(path) else reference_name

    @classmethod
    def execute(cls, reference_name: str) -> io.NodeOutput:
        path = folder_paths.get_full_path(REFERENCE_FOLDER, reference_name)
        if path is None:
            raise StyleAlignedError(
                f"{LOAD_NODE_ID}: reference_name '{reference_name}' is not in models/stylealign or output/stylealign."
            )
        try:
            return io.NodeOutput(load_reference(Path(path)))
        except StyleAlignedError as error:
            raise StyleAlignedError(f"{LOAD_NODE_ID}: reference_name {error}") from error
