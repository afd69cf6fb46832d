"""V3 schema features that only newer hosts have, passed only where the host accepts them.

ComfyUI 0.33's V3 schema takes `advanced=True` on an input (the front end folds it under "advanced") and
`search_aliases` on a Schema (extra words for the node search). ComfyUI 0.3.75 has neither and would raise
TypeError on the keyword, so these helpers use a feature only when the host's class declares it:

    return with_advanced_inputs(io.Schema(node_id=..., ..., **search_words("style transfer")), "adain_values", ...)

Neither changes a node id, an input name, a default or what a saved graph runs.
"""

from __future__ import annotations

import dataclasses
import inspect

from comfy_api.latest import io


def _accepts_keyword(function, keyword: str) -> bool:
    try:
        return keyword in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


INPUTS_HAVE_ADVANCED = _accepts_keyword(io.Input.__init__, "advanced")
SCHEMA_HAS_SEARCH_ALIASES = dataclasses.is_dataclass(io.Schema) and "search_aliases" in {
    field.name for field in dataclasses.fields(io.Schema)
}

# The words every StyleAligned node is found by, besides its own.
PACK_SEARCH_WORDS = ("style aligned", "consistent style", "shared attention", "batch style")


def search_words(*words: str) -> dict:
    """search_aliases for io.Schema where the host has them: the pack's words, then the node's own."""
    if not SCHEMA_HAS_SEARCH_ALIASES:
        return {}
    return {"search_aliases": list(dict.fromkeys(PACK_SEARCH_WORDS + words))}


def with_advanced_inputs(schema: io.Schema, *input_names: str) -> io.Schema:
    """The schema with the named inputs folded under "advanced" where the host has that (the attribute the
    host's own `advanced=True` keyword sets); unchanged elsewhere. A name that is no input raises, so a
    renamed input cannot silently stay in view."""
    inputs = {item.id: item for item in schema.inputs}
    unknown = [name for name in input_names if name not in inputs]
    if unknown:
        raise ValueError(f"{schema.node_id}: no inputs named {unknown} to mark advanced")
    if INPUTS_HAVE_ADVANCED:
        for name in input_names:
            inputs[name].advanced = True
    return schema
