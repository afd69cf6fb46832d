"""The host's own pre-RoPE hook (ComfyUI 0.33: attn1 patches inside Flux double/single blocks and
Qwen-Image attention, before RoPE): AdaIN there gives the images of the 0.3.75 path (the override undoing
and redoing RoPE around AdaIN) within float rounding. Hosts without the hook skip, saying so."""

import pytest
import torch

from host.dit_oracle import max_diff
from host.sampling import sample, style_aligned
from host.tiny_dit_models import dit_conditioning, dit_noise, tiny_dit


def with_attn1_patches(model, make):
    """A clone whose attn1 patch list is make(list of patches)."""
    clone = model.clone()
    options = clone.model_options["transformer_options"]
    patches = dict(options.get("patches", {}))
    patches["attn1_patch"] = make(list(patches.get("attn1_patch", [])))
    options["patches"] = patches
    return clone


@pytest.mark.parametrize("kind, blocks", [("flux", "auto"), ("flux", "all"), ("qwen_image", "auto"), ("flux2", "auto")])
def test_pre_rope_hook_gives_the_images_of_the_override_path(pack, kind, blocks):
    model = tiny_dit(kind)
    positive, negative = dit_conditioning(kind, seed=1), dit_conditioning(kind, seed=2)
    noise = dit_noise(kind, 3, seed=7)
    patched = style_aligned(model, transformer_blocks=blocks)
    (hook,) = patched.model_options["transformer_options"]["patches"]["attn1_patch"]
    ran = []

    def counted(q, k, v, **kwargs):
        out = hook(q, k, v, **kwargs)
        ran.append(bool(out))
        return out

    via_hook = sample(with_attn1_patches(patched, lambda _: [counted]), noise, positive, negative, steps=2)
    if not any(ran):
        pytest.skip("this ComfyUI does not call attn1 patches inside DiT blocks (0.33 does): the override path is the only one")
    via_override = sample(with_attn1_patches(patched, lambda _: []), noise, positive, negative, steps=2)
    plain = sample(model, noise, positive, negative, steps=2)
    assert max_diff(via_hook[1:], plain[1:]) > 1e-2
    assert max_diff(via_hook[0], plain[0]) < 1e-5
    assert max_diff(via_hook, via_override) < 1e-5 * max(1.0, via_override.abs().max().item())
