"""Install / remove "the StyleAligned patch set" on a ModelPatcher clone (host glue, one set per model).

The set is: an optional attn1 patch, a route's model-call logic (UNetModelCall or TransformerModelCall, both
run(ModelCallInputs)) behind one APPLY_MODEL adapter under one key, which the host chains with every other
wrapper, so a node that later sets model_function_wrapper without chaining cannot drop it, and an optional
attention override. Both routes install the same shape of set. A model that already carries a set (patched twice) has
it removed first, so the later node's settings win; everyone else's patches, wrappers and overrides stay,
in their order.
"""

from __future__ import annotations

from typing import Callable, Optional, Protocol

import comfy.patcher_extension

from ..stylealign_core.model_call_inputs import ModelCallInputs
from .shared_norm import remove_shared_group_norm
from ..stylealign_core.override_chain import OVERRIDE_KEY, override_for_call

WRAPPER_KEY = "stylealigned"
APPLY_MODEL = comfy.patcher_extension.WrappersMP.APPLY_MODEL


class RouteModelCall(Protocol):
    """Either route's per-model-call logic (stylealign_core.unet.model_call, stylealign_core.transformer.model_call)."""

    def run(self, call: ModelCallInputs): ...


class StyleAlignedApplyModel:
    """APPLY_MODEL wrapper: adapts the host's wrapper signature to the route's model_call.run, and
    remembers the set's other pieces so that a later StyleAlignedPatch can take them off again."""

    def __init__(self, model_call: RouteModelCall, attn1_patch=None, attention_override=None) -> None:
        self.model_call = model_call
        self.attn1_patch = attn1_patch
        self.attention_override = attention_override

    def __call__(self, executor, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options={}, **kwargs):
        override = override_for_call(self.attention_override, transformer_options)
        if override is not self.attention_override:  # a later node replaced the slot without chaining
            transformer_options = dict(transformer_options, **{OVERRIDE_KEY: override})

        def run_model(model_input, call_options):
            return executor(model_input, t, c_concat, c_crossattn, control, call_options, **kwargs)

        return self.model_call.run(ModelCallInputs(
            x=x, timestep=t, transformer_options=transformer_options, run_model=run_model, attention_override=override,
            c_crossattn=c_crossattn, diffusion_model=executor.class_obj.diffusion_model, extra=kwargs,
        ))


def install_patch_set(
    model,
    model_call: RouteModelCall,
    attn1_patch=None,
    make_attention_override: Optional[Callable[[Optional[Callable]], Callable]] = None,
):
    """A clone of `model` carrying this StyleAligned patch set (and no earlier one). `model` is not changed.

    make_attention_override(previous_override) -> override must chain the previous override (or call the
    attention function when it is None). An override that a later node wrapped cannot be unwrapped on
    removal: it must do nothing when its own model call is not running.
    """
    patched = model.clone()
    remove_patch_set(patched)
    if attn1_patch is not None:
        patched.set_model_attn1_patch(attn1_patch)
    override = None
    if make_attention_override is not None:
        transformer_options = patched.model_options.setdefault("transformer_options", {})
        override = make_attention_override(transformer_options.get("optimized_attention_override"))
        transformer_options["optimized_attention_override"] = override
    patched.add_wrapper_with_key(APPLY_MODEL, WRAPPER_KEY, StyleAlignedApplyModel(model_call, attn1_patch, override))
    return patched


def remove_patch_set(patched) -> None:
    """Take any StyleAligned patch set off `patched`, which must be a clone this node owns."""
    for wrapper in patched.get_wrappers(APPLY_MODEL, WRAPPER_KEY):
        transformer_options = patched.model_options.get("transformer_options", {})
        patches = transformer_options.get("patches", {})
        if wrapper.attn1_patch is not None and "attn1_patch" in patches:
            kept = [patch for patch in patches["attn1_patch"] if patch is not wrapper.attn1_patch]
            patches = dict(patches)
            if kept:
                patches["attn1_patch"] = kept
            else:
                patches.pop("attn1_patch")
            transformer_options["patches"] = patches
        override = transformer_options.get("optimized_attention_override")
        if wrapper.attention_override is not None and override is wrapper.attention_override:
            previous = getattr(override, "previous_override", None)
            if previous is None:
                transformer_options.pop("optimized_attention_override")
            else:
                transformer_options["optimized_attention_override"] = previous
    patched.remove_wrappers_with_key(APPLY_MODEL, WRAPPER_KEY)
    remove_shared_group_norm(patched)


def has_patch_set(model) -> bool:
    return bool(model.get_wrappers(APPLY_MODEL, WRAPPER_KEY))
