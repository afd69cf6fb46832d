"""The transformer families: one module per family, found by discovery (adding a family = adding a file).

Each module defines a TransformerFamily subclass (../family.py) and exports it as `FAMILY`. A module
holds both halves of its family: the core half (block keys, q/k/v format, groups, defaults) and the
host-reading half (recognising the host's diffusion model, its block counts, each model call's
CallLayout from the model's own position helpers). The host-reading half lives here, in the core, and
not in nodes/, so that a family is one file; it stays free of ComfyUI imports by duck-typing the host's
model objects (attributes such as `double_blocks`, `pe_embedder`, `process_img`) and naming host modules
only as strings (`host_modules`). So stylealign_core imports no ComfyUI module and is unit-tested alone.

nodes/ reads this registry for the node's texts and its 'not supported' error: no family is named by
hand anywhere else.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache
from typing import Optional

from ..family import RefusedFamily, TransformerFamily


def _exported(attribute: str) -> tuple:
    """The given attribute of every module of this package that defines it, in module-name order."""
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        value = getattr(module, attribute, None)
        if value is not None:
            found.append(value)
    return tuple(found)


@lru_cache(maxsize=None)
def registered_families() -> tuple[type[TransformerFamily], ...]:
    """Every family class of this package (each module's FAMILY), in module-name order."""
    return _exported("FAMILY")


@lru_cache(maxsize=None)
def refused_families() -> tuple[type[RefusedFamily], ...]:
    """The host families recognised and refused with their cause (each module's REFUSED)."""
    return _exported("REFUSED")


def refused_family_for(diffusion_model) -> Optional[type[RefusedFamily]]:
    """The refused family that recognises the host's diffusion model; None: none does."""
    return next((family for family in refused_families() if family.recognises(diffusion_model)), None)


def family_for(diffusion_model) -> Optional[type[TransformerFamily]]:
    """The first registered family that recognises the host's diffusion model; None: no family does."""
    return next((family for family in registered_families() if family.recognises(diffusion_model)), None)
