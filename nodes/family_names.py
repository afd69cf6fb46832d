"""The supported model families in words, read from the one registry: the UNet route's UNET_MODELS and the
transformer families of FAMILY_HOSTS (each family's `models`, `defaults_from`, groups and lambda).

The node's description, its tooltips and the error for an unsupported model are built here, so adding a
family to the registry updates every text; pyproject.toml's description and the README are static and
checked against the same registry by tests/test_family_names_host.py.
"""

from __future__ import annotations

from ..stylealign_core.transformer import TransformerFamily
from ..stylealign_core.unet import UNET_MODELS

# How a block group reads in a sentence (a group the registry has but this lacks reads as its own name).
GROUP_WORDS = {
    "single": "the single-stream blocks",
    "double": "the double-stream blocks",
    "joint": "the joint blocks",
    "main": "the main layers",
    "noise_refiner": "the image noise refiner",
}


def transformer_families() -> list[TransformerFamily]:
    """One family object per family class, in registry order (Flux and Chroma share FluxFamily)."""
    from .transformer_model import FAMILY_HOSTS  # here, not above: transformer_model imports this module

    families: dict[type, TransformerFamily] = {}
    for host in FAMILY_HOSTS.values():
        families.setdefault(type(host.family), host.family)
    return list(families.values())


def transformer_models() -> tuple[str, ...]:
    return tuple(model for family in transformer_families() for model in family.models)


def supported_models() -> tuple[str, ...]:
    return UNET_MODELS + transformer_models()


def word_list(words) -> str:
    """"a", "a and b", "a, b and c"."""
    words = list(words)
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def supported_models_text() -> str:
    return f"{word_list(UNET_MODELS)} UNets and {word_list(transformer_models())} transformers"


def _family_label(family: TransformerFamily) -> str:
    return " / ".join(family.models)


def _paper_and_ours(describe) -> str:
    """`describe(family)` for every family: those with a paper's defaults first (named), then ours."""
    families = transformer_families()
    from_paper = [f"{_family_label(f)} {describe(f)} ({f.defaults_from}'s)" for f in families if f.defaults_from]
    ours = [f"{_family_label(f)} {describe(f)}" for f in families if not f.defaults_from]
    parts = from_paper + (["ours, untested on real weights: " + ", ".join(ours)] if ours else [])
    return "; ".join(parts)


def _default_blocks(family: TransformerFamily) -> str:
    if tuple(family.default_groups) == tuple(family.groups):
        return "every block"
    return " + ".join(GROUP_WORDS.get(group, group) for group in family.default_groups)


def default_blocks_text() -> str:
    """Each family's `auto` block choice, e.g. "Flux.1 / Flux.2 / Chroma the single-stream blocks (AlignedGen's); ours, ..."."""
    return _paper_and_ours(_default_blocks)


def default_key_scale_text() -> str:
    """Each family's `auto` lambda, e.g. "Flux.1 / Flux.2 / Chroma 1.1 (AlignedGen's); ours, ...: SD3 / SD3.5 1.0"."""
    return _paper_and_ours(lambda family: f"{family.default_key_scale:g}")


def paper_models_text() -> str:
    """The transformer models whose defaults come from a paper, e.g. "Flux.1, Flux.2 and Chroma"."""
    return word_list(model for family in transformer_families() if family.defaults_from for model in family.models)
