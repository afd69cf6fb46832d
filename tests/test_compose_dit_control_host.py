"""StyleAlignedPatch on Flux next to two more host nodes of the works-with table, real sampler:
- a Flux ControlNet (XLabs layout: comfy.ldm.flux.controlnet.ControlNetFlux in comfy.controlnet.ControlNet,
  what ControlNetLoader builds for such a file) applied with ControlNetApplyAdvanced. The ControlNet runs
  its own Flux blocks without transformer_options, so StyleAligned never reaches its attention: each row's
  control residuals are its own, and the pack must leave them so;
- USO's style reference (USOStyleReference: a SigLIP projector model patch whose post_input patch prepends
  style tokens to every row's text tokens), both orders.

The reference slot must come out as with the other node alone, the targets must change.
"""

import pytest
import torch

from host.comfy_env import host_node_class
from host.sampling import sample, style_aligned
from host.tiny_clip_vision import tiny_clip_vision
from host.tiny_dit_models import dit_noise, host_unet_config, tiny_dit
from host.tiny_models import _randomise
from test_compose_dit_host import assert_aligned_as, conds, max_diff, run

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def flux(pack):
    return tiny_dit("flux")


@pytest.fixture(scope="module")
def flux_controlnet(pack):
    """A tiny Flux ControlNet built from the host's own classes, as comfy.controlnet loads an XLabs file."""
    import comfy.controlnet
    import comfy.ldm.flux.controlnet
    import comfy.ops

    control_model = comfy.ldm.flux.controlnet.ControlNetFlux(
        operations=comfy.ops.disable_weight_init, device=CPU, dtype=torch.float32, **host_unet_config("flux"))
    _randomise(control_model, 21)
    return comfy.controlnet.ControlNet(control_model, load_device=CPU, manual_cast_dtype=None, extra_conds=["y", "guidance"])


def recorded_control_outputs(control_net):
    """Every output of the ControlNet's model during a run, in call order."""
    outputs = []

    def record(module, args, output):
        outputs.append({key: [t.clone() for t in value] for key, value in output.items()})

    return outputs, control_net.control_model.register_forward_hook(record)


def test_flux_controlnet_on_the_prompts(flux, flux_controlnet):
    positive, negative = conds()
    hint = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(22))
    controlled = host_node_class("ControlNetApplyAdvanced")().apply_controlnet(
        positive, negative, flux_controlnet, hint, 1.0, 0.0, 1.0)[:2]

    alone_controls, hook = recorded_control_outputs(flux_controlnet)
    try:
        alone = run(flux, controlled)
        hook.remove()
        styled_controls, hook = recorded_control_outputs(flux_controlnet)
        styled = run(style_aligned(flux), controlled)
    finally:
        hook.remove()
    assert max_diff(alone, run(flux, (positive, negative))) > 1e-3  # the ControlNet is used
    assert_aligned_as(styled, alone)
    # The first step's ControlNet call has the same inputs in both runs (later ones see styled targets): the
    # same residuals for every row, the reference's and the targets': the pack never touches its attention.
    assert alone_controls and len(styled_controls) == len(alone_controls)
    for want, got in zip(alone_controls[0]["input"], styled_controls[0]["input"]):
        assert torch.equal(want, got)


@pytest.fixture(scope="module")
def uso(pack):
    """USO's parts, tiny: the SigLIP projector (what ModelPatchLoader builds for a USO projector file) and
    the output of a 20-layer SigLIP image encoder (USO reads hidden layers -20 and -11 and the penultimate)."""
    import comfy.model_patcher
    import comfy.ops
    from comfy_extras.nodes_model_patch import SigLIPMultiFeatProjModel

    encoder = tiny_clip_vision("siglip", seed=13, num_hidden_layers=20)
    style_image = torch.rand(1, 32, 32, 3, generator=torch.Generator().manual_seed(14))
    tokens = (32 // 8) ** 2
    projector = SigLIPMultiFeatProjModel(siglip_token_nums=tokens, style_token_nums=4, siglip_token_dims=32,
                                         hidden_size=host_unet_config("flux")["hidden_size"],
                                         device=CPU, dtype=torch.float32, operations=comfy.ops.manual_cast)
    _randomise(projector, 15)
    model_patch = comfy.model_patcher.ModelPatcher(projector, load_device=CPU, offload_device=CPU)
    return model_patch, encoder, style_image


def with_uso(model, uso, batch):
    model_patch, encoder, style_image = uso
    with torch.inference_mode():  # as the host executes nodes (its model clones deep-copy the patch's tensors)
        vision_output = encoder.encode_image(style_image.repeat(batch, 1, 1, 1))
    return host_node_class("USOStyleReference")().apply_patch(model, model_patch, vision_output)[0]


def run_guidance_distilled(model, seed=3):
    """As USO workflows sample Flux: cfg 1 (the negative is not run), one model call of the set's rows."""
    positive, negative = conds()
    return sample(model, dit_noise("flux", 3, seed=seed), positive, negative, cfg=1.0, steps=2)


@pytest.mark.parametrize("ours_first", [True, False], ids=["stylealigned_first", "stylealigned_last"])
def test_uso_style_reference_both_orders(flux, uso, ours_first):
    alone = run_guidance_distilled(with_uso(flux, uso, batch=3))
    assert max_diff(alone, run_guidance_distilled(flux)) > 1e-3  # the style tokens are used
    patched = with_uso(style_aligned(flux), uso, batch=3) if ours_first else style_aligned(with_uso(flux, uso, batch=3))
    assert_aligned_as(run_guidance_distilled(patched), alone)
