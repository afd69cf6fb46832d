"""StyleAligned for ComfyUI: registration only. ComfyUI calls comfy_entrypoint() to get the nodes."""

from .nodes import comfy_entrypoint

__all__ = ["comfy_entrypoint"]
