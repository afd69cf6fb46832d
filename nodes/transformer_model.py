"""The transformer route's glue: which registered family a model is, and installing the route on a clone.

Everything a family reads off the host model (recognising it, its blocks, each call's layout from the
model's own position helpers) lives in its module under stylealign_core/transformer/families/; this
module only asks the registry and installs the patch set.
"""

from __future__ import annotations

from typing import Optional

from ..stylealign_core import HeldReference, StyleAlignedError, StyleAlignedOptions
from ..stylealign_core.transformer import SharedAttentionOverride, TransformerFamily, TransformerSharing, family_for
from ..stylealign_core.transformer.model_call import TransformerModelCall
from ..stylealign_core.transformer.pre_rope_patch import PreRopeAdaIN
from .family_names import supported_models_text
from .patch_set import install_patch_set


def transformer_family(model, node_name: str) -> Optional[TransformerFamily]:
    """A new instance of the registered family of a transformer model (one per patch install); None for a
    UNet (the attn1 route). A transformer model no family covers raises StyleAlignedError naming the node
    and the model's class."""
    diffusion_model = model.get_model_object("diffusion_model")
    if all(hasattr(diffusion_model, name) for name in ("input_blocks", "middle_block", "output_blocks")):
        return None
    family = family_for(diffusion_model)
    if family is None:
        described = f"{type(model.model).__name__} ({type(diffusion_model).__module__}.{type(diffusion_model).__name__})"
        raise StyleAlignedError(
            f"{node_name}: the model family {described} is not supported. StyleAligned works with "
            f"{supported_models_text()}. Bypass the node for this model."
        )
    return family()


def install_transformer_route(
    model, family: TransformerFamily, options: StyleAlignedOptions, sharing: TransformerSharing,
    held_reference: Optional[HeldReference] = None,
):
    """A clone of `model` with the transformer route as its StyleAligned patch set (replacing any earlier
    set): the attention override, chaining whatever override is there, and the per-call wrapper (which
    holds the reference slot on a real image's trajectory when held_reference is given)."""
    # Hosts that call attn1 patches inside DiT blocks before RoPE AdaIN there; on others the patch never
    # runs and the override does it. Families recognised by counting calls have no such hook.
    pre_rope = PreRopeAdaIN(family, sharing) if family.uses_pre_rope_hook else None
    return install_patch_set(
        model,
        TransformerModelCall(options, family, sharing, held_reference),
        attn1_patch=pre_rope,
        make_attention_override=lambda previous: SharedAttentionOverride(family, sharing, previous),
    )
