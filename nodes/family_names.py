"""The supported model families in words, read from the registries: the UNet route's UNET_MODELS and the
registered transformer families (stylealign_core/transformer/families: each family's `models`,
`defaults_from`, groups, lambda and RoPE).

The node's description, its tooltips and the error for an unsupported model are built here, so adding a
family to the registry updates every text; pyproject.toml's description and the README are static and
checked against the same registry by tests/test_family_names_host.py.
"""

from __future__ import annotations

from ..stylealign_core.transformer import TransformerFamily, registered_families
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
    """One family object per registered family class, in registry order."""
    return [family() for family in registered_families()]


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
    """Each family's `auto` block choice, e.g. "<models> the single-stream blocks (<paper>'s); ours, ..."."""
    return _paper_and_ours(_default_blocks)


def default_key_scale_text() -> str:
    """Each family's `auto` lambda, e.g. "<models> 1.1 (<paper>'s); ours, ...: <models> 1.0"."""
    return _paper_and_ours(lambda family: f"{family.default_key_scale:g}")


def paper_models_text() -> str:
    """The transformer models whose defaults come from a paper, e.g. "a, b and c"."""
    return word_list(model for family in transformer_families() if family.defaults_from for model in family.models)


def position_shift_ignored_text() -> str:
    """Who ignores the position shift: "UNets and <transformers without RoPE>, whose positions are absolute"."""
    unrotated = [model for family in transformer_families() if family.width_axis is None for model in family.models]
    return f"UNets and {word_list(unrotated)}, whose positions are absolute" if unrotated else "UNets"
