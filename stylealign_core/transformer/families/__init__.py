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

from ..family import TransformerFamily


@lru_cache(maxsize=None)
def registered_families() -> tuple[type[TransformerFamily], ...]:
    """Every family class of this package (each module's FAMILY), in module-name order."""
    families = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        family = getattr(module, "FAMILY", None)
        if family is not None:
            families.append(family)
    return tuple(families)


def family_for(diffusion_model) -> Optional[type[TransformerFamily]]:
    """The first registered family that recognises the host's diffusion model; None: no family does."""
    return next((family for family in registered_families() if family.recognises(diffusion_model)), None)
