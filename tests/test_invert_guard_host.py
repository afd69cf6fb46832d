"""StyleAlignedInvertReference refuses a model that already carries StyleAlignedPatch, on every route.

Inverting through the patch would share attention inside a batch of one: on the UNet route that was
refused, while a patched Flux or Qwen-Image model used to get through and fail later with a misleading
"batch has 1 image" error from the patch. The guard reads the patch-set marker (nodes/patch_set.py), which
both routes install.
"""

import pytest
import torch

from host.sampling import run_node, style_aligned
from host.tiny_clip import tiny_clip
from host.tiny_dit_models import StandInT5Clip, dit_noise, tiny_dit
from host.tiny_models import tiny_model

KINDS = ("sd15", "flux", "qwen_image")


def model_and_clip(kind):
    if kind == "sd15":
        return tiny_model("sd15"), tiny_clip("sd15")
    return tiny_dit(kind), StandInT5Clip(kind)


def one_image_latent(kind):
    return dit_noise(kind, 1) if kind != "sd15" else torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))


def invert(model, clip, kind):
    return run_node(
        "StyleAlignedInvertReference", model=model, clip=clip, latent={"samples": one_image_latent(kind)},
        prompt="a red toy", steps=2, scheduler="normal",
    )[0]


@pytest.mark.parametrize("kind", KINDS)
def test_patched_model_is_refused_naming_node_and_cause(pack, error_type, kind):
    model, clip = model_and_clip(kind)
    patched = style_aligned(model)
    with pytest.raises(error_type) as raised:
        invert(patched, clip, kind)
    message = str(raised.value)
    assert message.startswith("StyleAlignedInvertReference:")
    assert "already carries StyleAlignedPatch" in message
    assert "batch has 1 image" not in message


@pytest.mark.parametrize("kind", ("flux", "qwen_image"))
def test_model_patched_then_unpatched_chain_still_inverts(pack, kind):
    # The model from before the patch (what the error tells the user to connect) inverts normally.
    model, clip = model_and_clip(kind)
    style_aligned(model)  # patching makes a clone; the loader's model stays unpatched
    reference = invert(model, clip, kind)
    assert torch.isfinite(reference.noise).all() and reference.sigmas.numel() >= 2
