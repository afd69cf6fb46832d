"""StyleAlignedPatch on transformer models next to the host's nodes, both orders where it applies, real
sampler: ModelAttentionBackend (0.33), a LoRA on Flux, ModelSamplingFlux / ModelSamplingAuraFlow,
ReferenceLatent (Kontext / Flux.2 reference images), StyleModelApply (Redux) on the prompts.

The reference slot must come out as with the other node alone, the targets must change.
"""

import pytest
import torch

from host.dit_oracle import max_diff
from host.comfy_env import host_node_class, load_host
from host.sampling import run_node, sample, style_aligned
from host.tiny_dit_models import dit_conditioning, dit_noise, tiny_dit
from test_compose_host import attention_backend, host_patch

STEPS = 2
REFERENCE_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def flux(pack):
    return tiny_dit("flux")


def conds(kind="flux"):
    return dit_conditioning(kind, seed=1), dit_conditioning(kind, seed=2)


def run(model, positive_negative, kind="flux", seed=3):
    positive, negative = positive_negative
    return sample(model, dit_noise(kind, 3, seed=seed), positive, negative, steps=STEPS)


def assert_aligned_as(out, alone):
    """Reference as with the other node alone; targets styled."""
    assert out.isfinite().all()
    assert max_diff(out[0], alone[0]) < REFERENCE_TOLERANCE * max(1.0, alone.abs().max().item())
    assert max_diff(out[1:], alone[1:]) > 1e-2


@pytest.mark.parametrize("order", ["backend_last", "backend_first"])
@pytest.mark.parametrize("kind", ["flux", "qwen_image"])
def test_attention_backend_node_both_orders(pack, kind, order):
    model = tiny_dit(kind)
    alone = run(style_aligned(model, reference_strength=0.5), conds(kind), kind)
    if order == "backend_last":
        patched = attention_backend(style_aligned(model, reference_strength=0.5))
    else:
        patched = style_aligned(attention_backend(model), reference_strength=0.5)
    out = run(patched, conds(kind), kind)
    assert max_diff(out, alone) < 1e-5 * max(1.0, alone.abs().max().item())
    assert_aligned_as(out, run(attention_backend(model), conds(kind), kind))


@pytest.fixture(scope="module")
def flux_lora(tmp_path_factory, flux):
    """A tiny LoRA for every linear weight of the tiny Flux, in the lora_unet_ format."""
    load_host()
    import comfy.utils
    import folder_paths

    generator = torch.Generator().manual_seed(7)
    tensors = {}
    for key, weight in flux.model.diffusion_model.state_dict().items():
        if key.endswith(".weight") and weight.ndim == 2 and ("blocks" in key):
            name = "lora_unet_" + key[: -len(".weight")].replace(".", "_")
            tensors[name + ".lora_up.weight"] = 0.3 * torch.randn(weight.shape[0], 2, generator=generator)
            tensors[name + ".lora_down.weight"] = torch.randn(2, weight.shape[1], generator=generator) / weight.shape[1] ** 0.5
            tensors[name + ".alpha"] = torch.tensor(2.0)
    folder = tmp_path_factory.mktemp("flux_loras")
    comfy.utils.save_torch_file(tensors, str(folder / "stylealigned-tiny-flux-lora.safetensors"))
    folder_paths.add_model_folder_path("loras", str(folder))
    return "stylealigned-tiny-flux-lora.safetensors"


def with_lora(model, name):
    return host_node_class("LoraLoaderModelOnly")().load_lora_model_only(model, name, 1.0)[0]


def test_lora_on_flux_both_orders(flux, flux_lora):
    alone = run(with_lora(flux, flux_lora), conds())
    assert max_diff(alone, run(flux, conds())) > 1e-2  # the LoRA does change the model
    for patched in (style_aligned(with_lora(flux, flux_lora)), with_lora(style_aligned(flux), flux_lora)):
        assert_aligned_as(run(patched, conds()), alone)


@pytest.mark.parametrize("node_id, inputs", [
    ("ModelSamplingFlux", {"max_shift": 1.15, "base_shift": 0.5, "width": 64, "height": 64}),
    ("ModelSamplingAuraFlow", {"shift": 3.0}),
])
@pytest.mark.parametrize("ours_first", [True, False], ids=["stylealigned_first", "stylealigned_last"])
def test_model_sampling_nodes_both_orders(flux, node_id, inputs, ours_first):
    alone = run(host_patch(node_id, flux, **inputs), conds())
    assert max_diff(alone, run(flux, conds())) > 1e-3  # the schedule changed
    patched = host_patch(node_id, style_aligned(flux), **inputs) if ours_first else style_aligned(host_patch(node_id, flux, **inputs))
    assert_aligned_as(run(patched, conds()), alone)


def with_reference_latent(conditioning, latent):
    return run_node("ReferenceLatent", conditioning=conditioning, latent={"samples": latent})[0]


@pytest.mark.parametrize("kind", ["flux", "flux2"])
def test_reference_latent_edit_references(pack, kind):
    """Kontext (Flux.1) / Flux.2 reference images through ReferenceLatent: extra tokens after the image,
    neither shared nor normalised; the reference slot as without the pack."""
    model = tiny_dit(kind)
    positive, negative = conds(kind)
    edit = dit_noise(kind, 1, seed=42)
    referenced = (with_reference_latent(positive, edit), negative)
    alone = run(model, referenced, kind)
    assert max_diff(alone, run(model, (positive, negative), kind)) > 1e-3  # the reference image is used
    assert_aligned_as(run(style_aligned(model), referenced, kind), alone)


class TinyVisionOutput:
    """What StyleModelApply reads of a CLIP vision output (SigLIP features for Redux)."""

    def __init__(self, last_hidden_state):
        self.last_hidden_state = last_hidden_state


@pytest.fixture(scope="module")
def redux(pack):
    import comfy.ldm.flux.redux
    import comfy.sd

    from host.tiny_models import _randomise

    encoder = comfy.ldm.flux.redux.ReduxImageEncoder(redux_dim=16, txt_in_features=32)
    _randomise(encoder, 11)
    features = TinyVisionOutput(torch.randn(1, 5, 16, generator=torch.Generator().manual_seed(12)))
    return comfy.sd.StyleModel(encoder), features


@pytest.mark.parametrize("strength_type, strength", [("multiply", 1.0), ("attn_bias", 0.5)])
def test_redux_style_model_on_the_prompts(flux, redux, strength_type, strength):
    """StyleModelApply appends Redux tokens to the prompt; attn_bias below 1 adds an attention mask, which
    keeps covering each row's own keys while the appended reference keys stay unmasked."""
    style_model, features = redux
    positive, negative = conds()
    styled = host_node_class("StyleModelApply")().apply_stylemodel(positive, style_model, features, strength, strength_type)[0]
    if strength_type == "attn_bias":
        assert "attention_mask" in styled[0][1]
    alone = run(flux, (styled, negative))
    assert max_diff(alone, run(flux, (positive, negative))) > 1e-3  # the Redux tokens are used
    assert_aligned_as(run(style_aligned(flux), (styled, negative)), alone)
