"""Host glue for the shared GroupNorm (stylealign_core/unet/shared_group_norm.py): one ModelPatcher object
patch per GroupNorm module's `forward`, which the host applies when it loads the clone and removes after;
the shared model's modules are never changed by this node."""

from __future__ import annotations

from contextlib import contextmanager

import comfy.ops
import torch

from ..stylealign_core.unet.patch_runtime import PatchRuntime
from ..stylealign_core.unet.shared_group_norm import SharedGroupNormForward


@contextmanager
def host_affine(module: torch.nn.Module, like: torch.Tensor):
    """The norm's weight and bias as the host's own GroupNorm would use them (cast to the input's device
    and dtype, with any weight functions such as LoRA applied, offloaded weights brought in and released)."""
    if getattr(module, "comfy_cast_weights", False) or getattr(module, "weight_function", None) or getattr(module, "bias_function", None):
        weight, bias, offload_stream = comfy.ops.cast_bias_weight(module, like, offloadable=True)
        try:
            yield weight, bias
        finally:
            comfy.ops.uncast_bias_weight(module, weight, bias, offload_stream)
    else:
        yield module.weight, module.bias


def install_shared_group_norm(patched, runtime: PatchRuntime) -> int:
    """Object patches on every GroupNorm of the clone's diffusion model; returns how many."""
    diffusion_model = patched.get_model_object("diffusion_model")
    count = 0
    for name, module in diffusion_model.named_modules():
        if isinstance(module, torch.nn.GroupNorm):
            key = f"diffusion_model.{name}.forward"
            # Chain another node's object patch of this forward, else the module class's own forward
            # (never the instance attribute, which a loaded clone's patch may occupy right now).
            wrapped = patched.object_patches.get(key) or type(module).forward.__get__(module)
            patched.add_object_patch(key, SharedGroupNormForward(wrapped, module, runtime, host_affine))
            count += 1
    return count


def remove_shared_group_norm(patched) -> None:
    """Take this pack's GroupNorm patches off a clone, restoring what they chained from another node."""
    for key, patch in list(patched.object_patches.items()):
        if isinstance(patch, SharedGroupNormForward):
            wrapped = patch.wrapped_forward
            if isinstance(wrapped, SharedGroupNormForward) or getattr(wrapped, "__self__", None) is patch.module:
                del patched.object_patches[key]
            else:
                patched.object_patches[key] = wrapped
