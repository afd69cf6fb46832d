"""Bring the ComfyUI host into this Python process, CPU only, with the pack loaded as a custom node.

The pack is loaded the way ComfyUI loads custom nodes (nodes.load_custom_node on a folder under
custom_nodes), through a symlink so the module name never depends on the clone's folder name.
"""

from __future__ import annotations

import asyncio
import os
import sys
from functools import lru_cache
from pathlib import Path
from types import ModuleType

from .fetch_comfyui import CACHE_DIR, REPO_ROOT, comfyui_path, host_packages_dir

PACK_LINK_NAME = "ComfyUI-StyleAligned"


def _put_host_first_on_path(host: Path) -> None:
    # ComfyUI owns the top-level module names `nodes`, `comfy`, ...; the repository root (which has a
    # `nodes/` package of our own) must never shadow them.
    for entry in ("", str(REPO_ROOT), os.getcwd()):
        while entry in sys.path and Path(entry or ".").resolve() == REPO_ROOT:
            sys.path.remove(entry)
    if str(host) not in sys.path:
        sys.path.insert(0, str(host))
    own_packages = host_packages_dir(host)  # this host's own front end / templates versions (fetch_comfyui.py)
    if own_packages and str(own_packages) not in sys.path:
        sys.path.insert(0, str(own_packages))


@lru_cache(maxsize=None)
def load_host() -> ModuleType:
    """Import ComfyUI (CPU mode) and load this pack; returns the loaded pack module."""
    host = comfyui_path()
    _put_host_first_on_path(host)
    # As ComfyUI's main.py does: bind the host's `utils` package before any module puts comfy/ (which
    # has a utils.py) on sys.path.
    import utils.extra_config  # noqa: F401
    import comfy.options

    comfy.options.enable_args_parsing(False)
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    comfy.cli_args.args.disable_all_custom_nodes = False
    import nodes as host_nodes  # ComfyUI's nodes.py

    asyncio.run(host_nodes.init_builtin_extra_nodes())
    link = CACHE_DIR / "custom_nodes" / PACK_LINK_NAME
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        link.symlink_to(REPO_ROOT, target_is_directory=True)
    if not asyncio.run(host_nodes.load_custom_node(str(link))):
        raise RuntimeError("ComfyUI failed to load the pack; see the log above")
    return sys.modules[str(link).replace(".", "_x_")]


def host_node_classes() -> dict:
    """ComfyUI's NODE_CLASS_MAPPINGS (the host's top-level nodes.py, never the pack's nodes/ package)."""
    load_host()
    import nodes as host_nodes

    return host_nodes.NODE_CLASS_MAPPINGS


def host_node_class(node_id: str):
    return host_node_classes()[node_id]
