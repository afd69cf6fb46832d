"""ERNIE-Image (comfy/ldm/ernie, ComfyUI 0.33+): refused at the node, with the cause.

How the host calls attention: ErnieImageModel.forward concatenates [image, text], applies split-half RoPE
(fused RMSNorm + RoPE) and calls `optimized_attention(q, k, v, heads, mask=...)` in every layer WITHOUT
transformer_options. ComfyUI's attention override, the one hook through which this pack reaches a
transformer's attention, is read from transformer_options inside the attention wrapper, so it never sees
these calls. The routes looked at, and why none is taken:
- patches_replace / block patches / attn1 patches: ErnieImageModel reads none of them.
- A DIFFUSION_MODEL wrapper injecting transformer_options: its forward runs no wrappers, and the layers
  take no transformer_options argument to carry them.
- Replacing each layer's attention module (a ModelPatcher object patch): the replacement would have to
  repeat ErnieImageAttention.forward (projections, fused norm + RoPE, the call) with transformer_options
  added: a copy of host internals that goes silently wrong when ComfyUI changes them (the failure the
  design notes warn about for block replacements), or a rebinding of the host's own forward to other
  globals, which depends on the module's private names just as much.
- Swapping the module-level `optimized_attention` of comfy.ldm.ernie.model for the sampling run: global
  state shared by every ERNIE model in the process (multi-GPU sampling runs models in threads).
Even with a route, its RoPE is not the rotation the pack's maths assume: ErnieImageEmbedND3 builds each
channel pair's matrix from two different angles ([[cos a, -sin a], [sin b, cos b]]: the first half of the
head turns by the first half of the angles, the second half by the second half), so R^T does not undo it
and R(p + d) != R(d) R(p): AdaIN before RoPE and the position shift would need maths of their own.
So StyleAlignedPatch refuses ERNIE-Image with this cause, naming the node, instead of the generic 'not
supported' (tests/test_family_ernie_host.py also checks the premise: when a host passes
transformer_options to ERNIE's attention, or its RoPE becomes a rotation, that test fails and says what
changed).
"""

from __future__ import annotations

from . import RefusedFamily


class ErnieImageRefused(RefusedFamily):
    name = "ERNIE-Image"
    host_modules = ("comfy.ldm.ernie.model",)
    cause = (
        "its layers call attention without transformer_options, so ComfyUI's attention override (where "
        "StyleAligned shares attention) never sees them, and the model runs no wrappers or block patches in "
        "between; sharing would mean replacing ERNIE's attention code with a copy that breaks silently when "
        "ComfyUI changes it. Bypass StyleAlignedPatch for this model."
    )


REFUSED = ErnieImageRefused
