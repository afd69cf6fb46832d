"""Host model families the pack recognises but cannot patch correctly, one module each, found by
discovery: StyleAlignedPatch refuses such a model with the cause (naming the node and the family) instead
of the generic 'not supported'. A module here exports `REFUSED`, a RefusedFamily subclass. These are not
transformer families (families/): they are not registered, have no tiny model to pass the invariants, and
are not listed among the supported models.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache
from typing import Optional


class RefusedFamily:
    """A refused host family: its name, the host modules it covers (strings, never imported) and why."""

    # For messages, e.g. "ERNIE-Image".
    name: str = ""
    # The modules of the host's diffusion-model classes refused, as strings.
    host_modules: tuple[str, ...] = ()
    # Why the pack cannot patch it, and what the user can do (a sentence or two).
    cause: str = ""

    @classmethod
    def recognises(cls, diffusion_model) -> bool:
        return type(diffusion_model).__module__ in cls.host_modules

    @classmethod
    def refusal(cls, node_name: str) -> str:
        return f"{node_name}: {cls.name} is not supported: {cls.cause}"


@lru_cache(maxsize=None)
def refused_families() -> tuple[type[RefusedFamily], ...]:
    """Every module's REFUSED, in module-name order."""
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
        refused = getattr(importlib.import_module(f"{__name__}.{info.name}"), "REFUSED", None)
        if refused is not None:
            found.append(refused)
    return tuple(found)


def refused_family_for(diffusion_model) -> Optional[type[RefusedFamily]]:
    """The refused family that recognises the host's diffusion model; None: none does."""
    return next((family for family in refused_families() if family.recognises(diffusion_model)), None)
