"""Layouts that newer ComfyUI hosts (0.33) give known families: LongCat-Image (loads as Flux, adds RoPE
offsets inside its model call) is aligned at the model's own positions; Z-Image Omni (reference latents and
SigLIP features in the joint sequence) is refused with an error naming the node and the model.

Tiny random models from the host's own classes; hosts without these models skip, saying so.
"""

import pytest
import torch

from host.dit_oracle import conds, max_diff
from host.sampling import sample, style_aligned
from host.tiny_dit_models import TEXT_TOKENS, dit_noise, tiny_dit
from test_transformer_host import LATENT, alignedgen_attention


def test_longcat_matches_alignedgen_at_its_offset_positions(pack):
    import comfy.supported_models

    if not hasattr(comfy.supported_models, "LongCatImage"):
        pytest.skip("this ComfyUI has no LongCat-Image (added after 0.3.75)")
    import comfy.ldm.flux.layers

    model = tiny_dit("longcat")
    positive, negative = conds("longcat")
    noise = dit_noise("longcat", 3, seed=3)
    patched = sample(style_aligned(model), noise, positive, negative, cfg=3.0, steps=1)
    # LongCat's image ids: index 1, row and col offset by the text length (its rope_options defaults).
    attention, seen = alignedgen_attention(
        model.model.diffusion_model.params, 3, 0, (LATENT // 2, LATENT // 2),
        id_offsets=(1.0, float(TEXT_TOKENS), float(TEXT_TOKENS)))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(comfy.ldm.flux.layers, "attention", attention)
        independent = sample(model, noise, positive, negative, cfg=3.0, steps=1)
    plain = sample(model, noise, positive, negative, cfg=3.0, steps=1)
    assert seen["shared"] == 2
    assert max_diff(patched[0], plain[0]) < 1e-5
    assert max_diff(patched[1:], plain[1:]) > 1e-2
    assert max_diff(patched, independent) < 1e-4


def omni_conditioning(kind, conditioning, seed=21):
    """Z-Image Omni's conditioning: reference latents (ReferenceLatent) make the model run its omni layout."""
    reference = torch.randn(1, 16, 8, 8, generator=torch.Generator().manual_seed(seed))
    return [[c, dict(extras, reference_latents=[reference])] for c, extras in conditioning]


def host_runs_z_image_omni() -> bool:
    import inspect

    import comfy.ldm.lumina.model

    return "ref_latents" in inspect.signature(comfy.ldm.lumina.model.NextDiT._forward).parameters


def test_z_image_omni_is_refused_naming_node_and_model(pack, error_type):
    kind = "z_image"  # the omni layout needs Z-Image's pad tokens (Lumina 2 itself cannot run it)
    if not host_runs_z_image_omni():
        pytest.skip("this ComfyUI's Lumina 2 / Z-Image model has no omni layout (reference latents; added after 0.3.75)")
    model = tiny_dit(kind)
    positive, negative = conds(kind)
    omni_positive, omni_negative = omni_conditioning(kind, positive), omni_conditioning(kind, negative)
    noise = dit_noise(kind, 3, seed=5)
    plain_omni = sample(model, noise, omni_positive, omni_negative, steps=1)
    assert max_diff(plain_omni, sample(model, noise, positive, negative, steps=1)) > 1e-4  # the omni layout ran
    with pytest.raises(error_type) as error:
        sample(style_aligned(model), noise, omni_positive, omni_negative, steps=1)
    message = str(error.value)
    assert "StyleAlignedPatch" in message and "Z-Image Omni" in message
    # The same model without reference latents is still aligned.
    plain = sample(model, noise, positive, negative, steps=1)
    aligned = sample(style_aligned(model), noise, positive, negative, steps=1)
    assert max_diff(aligned[0], plain[0]) < 1e-5 and max_diff(aligned[1:], plain[1:]) > 1e-3
