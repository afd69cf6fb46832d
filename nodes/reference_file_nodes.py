"""Save and load a StyleAligned reference as .safetensors (tensors + metadata, never pickle)."""

from __future__ import annotations

import errno
import os
import unicodedata
from pathlib import Path

import folder_paths
from comfy_api.latest import io, ui
from safetensors import SafetensorError

from ..stylealign_core import ReferenceTrajectory, StyleAlignedError, load_reference, save_reference
from .input_checks import check_inputs
from .reference_type import StyleAlignedReference
from .schema_features import search_words

REFERENCE_FOLDER = "stylealign"
REFERENCE_EXTENSION = ".safetensors"
SAVE_NODE_ID = "StyleAlignedSaveReference"
LOAD_NODE_ID = "StyleAlignedLoadReference"
DEFAULT_FILE_NAME = "reference"
# Bytes per folder or file name part: the counter and extension still fit the usual 255-byte limit.
MAX_NAME_PART_BYTES = 200
MAX_PREFIX_BYTES = 1024
WRITE_FAILURES = {
    errno.ENOSPC: "the disk is full",
    errno.EACCES: "the folder may not be written",
    errno.EPERM: "the folder may not be written",
    errno.EROFS: "the folder is on a read-only disk",
    errno.ENAMETOOLONG: "the path is too long",
}


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


def _clean_part(part: str) -> str:
    """One folder or file name of the prefix: control characters become '_', no leading dot (hidden file),
    no surrounding spaces, at most MAX_NAME_PART_BYTES bytes."""
    text = "".join("_" if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") else char for char in part)
    text = text.strip().lstrip(".").strip()
    while len(text.encode("utf-8")) > MAX_NAME_PART_BYTES:
        text = text[:-1]
    return text


def clean_filename_prefix(prefix: str) -> str:
    """The save node's filename_prefix as a safe relative path: no hidden or empty names, no control
    characters; refuses an absolute path or '..' (outside the output folder) in the pack's own words."""
    if os.path.isabs(prefix) or prefix.startswith(("/", "\\")):
        raise StyleAlignedError(
            f"{SAVE_NODE_ID}: filename_prefix is an absolute path; give a path under the output folder, e.g. "
            f"{REFERENCE_FOLDER}/{DEFAULT_FILE_NAME}."
        )
    parts = prefix.replace("\\", "/").split("/")
    if any(part.strip() == ".." for part in parts):
        raise StyleAlignedError(
            f"{SAVE_NODE_ID}: filename_prefix leaves the output folder ('..'); give a path under it, e.g. "
            f"{REFERENCE_FOLDER}/{DEFAULT_FILE_NAME}."
        )
    *folders, name = parts
    folders = [cleaned for cleaned in map(_clean_part, folders) if cleaned]
    cleaned = "/".join(folders + [_clean_part(name) or DEFAULT_FILE_NAME])
    if len(cleaned.encode("utf-8")) > MAX_PREFIX_BYTES:
        raise StyleAlignedError(
            f"{SAVE_NODE_ID}: filename_prefix is {len(cleaned.encode('utf-8'))} bytes long; keep it under "
            f"{MAX_PREFIX_BYTES}."
        )
    return cleaned


def _write_failure(error: Exception) -> str:
    return WRITE_FAILURES.get(getattr(error, "errno", None), "the system refused to write the file")


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
                    tooltip="Path under the output folder; a counter is added. Files under output/stylealign appear in the load node. "
                    "Control characters become '_', a leading dot (hidden file) is dropped, an empty name becomes 'reference'.",
                ),
            ],
            outputs=[],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, reference, filename_prefix: str) -> io.NodeOutput:
        check_inputs(cls, locals())
        if not isinstance(reference, ReferenceTrajectory):
            raise StyleAlignedError(
                f"{SAVE_NODE_ID}: reference is not a StyleAligned reference; connect StyleAlignedInvertReference's output."
            )
        prefix = clean_filename_prefix(filename_prefix)
        output_dir = folder_paths.get_output_directory()
        try:
            folder, filename, counter, subfolder, _ = folder_paths.get_save_image_path(prefix, output_dir)
        except Exception as error:  # the host's own words ("Saving image outside ...") or the file system's
            raise StyleAlignedError(
                f"{SAVE_NODE_ID}: cannot save under filename_prefix '{prefix}': it must name a folder inside the "
                f"output folder that can be written ({_write_failure(error)})."
            ) from error
        path = Path(folder) / f"{filename}_{counter:05}_{REFERENCE_EXTENSION}"
        try:
            save_reference(reference, path)
        except (OSError, SafetensorError) as error:
            raise StyleAlignedError(
                f"{SAVE_NODE_ID}: cannot write {os.path.relpath(path, output_dir)} in the output folder: "
                f"{_write_failure(error)}. Free space or choose another filename_prefix."
            ) from error
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
        if reference_name not in reference_files():
            return reference_name
        path = folder_paths.get_full_path(REFERENCE_FOLDER, reference_name)
        return os.path.getmtime(path) if path and os.path.exists(path) else reference_name

    @classmethod
    def execute(cls, reference_name: str) -> io.NodeOutput:
        # Only a name the node lists (a .safetensors file under its folders): never any other file there.
        listed = reference_files()
        if reference_name not in listed:
            where = "no reference files are there yet" if not listed else f"listed: {', '.join(listed[:12])}"
            raise StyleAlignedError(
                f"{LOAD_NODE_ID}: reference_name {str(reference_name)[:80]!r} is not one of the .safetensors references in "
                f"models/stylealign or output/stylealign ({where}). Pick one from the list, or save one with "
                f"{SAVE_NODE_ID}."
            )
        path = folder_paths.get_full_path(REFERENCE_FOLDER, reference_name)
        if path is None:
            raise StyleAlignedError(
                f"{LOAD_NODE_ID}: reference_name '{reference_name}' is not in models/stylealign or output/stylealign."
            )
        try:
            return io.NodeOutput(load_reference(Path(path)))
        except StyleAlignedError as error:
            raise StyleAlignedError(f"{LOAD_NODE_ID}: reference_name {error}") from error
