"""Every node checks what it is given against its own schema before any work.

The host does not check a V3 dropdown value against its options (ComfyUI 0.3.75), NaN passes its min/max
checks, and code that calls a node directly checks nothing; so each node's execute() starts with
check_inputs(cls, values). A bad value is a StyleAlignedError naming the node, the input and what to set.
"""

from __future__ import annotations

import math
import numbers

import torch
from comfy_api.latest import io

from ..stylealign_core import StyleAlignedError

MAX_LISTED_OPTIONS = 12


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _choices(options) -> str:
    if not options:
        return "(the list is empty)"
    listed = ", ".join(str(option) for option in options[:MAX_LISTED_OPTIONS])
    return listed + (f", ... ({len(options)} in all)" if len(options) > MAX_LISTED_OPTIONS else "")


def _default_note(item) -> str:
    default = getattr(item, "default", None)
    return "" if default is None else f" (default {default})"


def check_choice(node_id: str, name: str, value, options, default=None) -> None:
    if not isinstance(value, (str, int)) or isinstance(value, bool) or value not in list(options):
        note = "" if default is None else f" (default {default})"
        raise StyleAlignedError(
            f"{node_id}: {name} is {_shown(value)}, which is not one of its options. Choose one of: "
            f"{_choices(list(options))}{note}."
        )


def check_number(node_id: str, name: str, value, low=None, high=None, integer=False, default=None) -> None:
    """A finite number (an integer when `integer`) within [low, high] where given."""
    kind = "an integer" if integer else "a finite number"
    wanted = numbers.Integral if integer else numbers.Real
    valid = isinstance(value, wanted) and not isinstance(value, bool) and math.isfinite(value)
    if valid and low is not None and value < low:
        valid = False
    if valid and high is not None and value > high:
        valid = False
    if not valid:
        bounds = ""
        if low is not None and high is not None:
            bounds = f" from {low} to {high}"
        elif low is not None:
            bounds = f" of at least {low}"
        elif high is not None:
            bounds = f" of at most {high}"
        note = "" if default is None else f" (default {default})"
        raise StyleAlignedError(f"{node_id}: {name} is {_shown(value)}; set it to {kind}{bounds}{note}.")


def check_inputs(node_class, values: dict) -> None:
    """Each widget value in `values` (input id -> value, e.g. the execute() arguments) against the
    node's own schema: dropdowns against their options, numbers finite and within min/max, booleans and
    text of their type. An optional input left out (None) is skipped."""
    schema = node_class.define_schema()
    node_id = schema.node_id
    for item in schema.inputs:
        if item.id not in values:
            continue
        value = values[item.id]
        if value is None and item.optional:
            continue
        default = getattr(item, "default", None)
        if isinstance(item, io.Combo.Input):
            check_choice(node_id, item.id, value, item.options or [], default)
        elif isinstance(item, io.Boolean.Input):
            if not isinstance(value, bool):
                raise StyleAlignedError(f"{node_id}: {item.id} is {_shown(value)}; set it to true or false{_default_note(item)}.")
        elif isinstance(item, io.Int.Input):
            check_number(node_id, item.id, value, item.min, item.max, integer=True, default=default)
        elif isinstance(item, io.Float.Input):
            check_number(node_id, item.id, value, item.min, item.max, default=default)
        elif isinstance(item, io.String.Input):
            if not isinstance(value, str):
                raise StyleAlignedError(f"{node_id}: {item.id} is a {type(value).__name__}; it must be text.")


def check_latent(node_id: str, name: str, latent) -> torch.Tensor:
    """A LATENT (a dict holding a 'samples' tensor of images); returns the samples."""
    samples = latent.get("samples") if isinstance(latent, dict) else None
    if not torch.is_tensor(samples) or samples.ndim < 3 or samples.shape[0] < 1:
        raise StyleAlignedError(
            f"{node_id}: {name} is not a latent batch; connect a LATENT output (e.g. Empty Latent Image or VAE Encode)."
        )
    return samples


def check_finite(node_id: str, name: str, tensor: torch.Tensor, cause: str) -> None:
    """Refuse NaN or inf in `tensor`; `cause` says where such values come from and what to do."""
    if not bool(torch.isfinite(tensor).all()):
        raise StyleAlignedError(f"{node_id}: {name} holds non-finite values (NaN or inf); {cause}")
