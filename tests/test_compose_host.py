"""StyleAlignedPatch next to the host's own model patches, in both orders, on the real sampler.

Every comfy_extras node that patches attention, the model call or guidance; a LoRA; a ControlNet; a model
patched twice; a later model_function_wrapper that does not chain. The reference slot must come out as with
the other node alone, the targets must change.
"""

import pytest
import torch

from host.comfy_env import host_node_class, host_node_classes, load_host
from host.sampling import node_defaults, sample, seeded_noise, style_aligned
from host.tiny_clip import tiny_clip
from host.tiny_models import tiny_conditioning, tiny_controlnet, tiny_model

# The tiny random UNet's outputs reach a few hundred under cfg 4 and guidance; float32 rounding of the
# reference's doubled key set then shows up at ~1e-6 of that.
REFERENCE_RELATIVE_TOLERANCE = 1e-5
STEPS = 3
CFG = 4.0
IMAGES = 3

# Inputs other than defaults: sizes that act on the tiny 8x8 latent, 2-level UNet.
HOST_PATCHES = {
    "PerturbedAttentionGuidance": {},
    "SelfAttentionGuidance": {},
    "FreeU": {},
    "FreeU_V2": {},
    "HyperTile": {"tile_size": 32, "swap_size": 1},
    "TomePatchModel": {"ratio": 0.5},
    "RescaleCFG": {},
    "TCFG": {},
    "APG": {},
    "CFGNorm": {},
    "Mahiro": {},
    "Epsilon Scaling": {},
    "PatchModelAddDownscale": {"block_number": 1, "end_percent": 0.5, "downscale_method": "bicubic", "upscale_method": "bicubic"},
}
# ToMe picks tokens at random (the global RNG, seeded before each run here); Mahiro mixes rows' guidance.
# Neither keeps a batch row independent of the others, so no "reference as alone" check for them.
COUPLES_ROWS = {"TomePatchModel", "Mahiro"}


def host_patch(node_id: str, model, **inputs):
    """Run a host node that takes a model (V3 or V1 API) with its defaults; returns the patched model."""
    node = host_node_class(node_id)
    if hasattr(node, "define_schema"):
        values = node_defaults(node_id)
        values.update(HOST_PATCHES.get(node_id, {}), model=model, **inputs)
        output = node.execute(**values)
        return (output.result if hasattr(output, "result") else output)[0]
    values = {name: spec[1]["default"] for name, spec in node.INPUT_TYPES()["required"].items() if len(spec) > 1 and "default" in spec[1]}
    values.update(HOST_PATCHES.get(node_id, {}), model=model, **inputs)
    return getattr(node(), node.FUNCTION)(**values)[0]


@pytest.fixture(scope="module")
def model(pack):
    return tiny_model("sd15")


@pytest.fixture(scope="module")
def conds(pack):
    return tiny_conditioning("sd15", seed=1), tiny_conditioning("sd15", seed=2)


def run(model, conds, noise=None, latent=None):
    positive, negative = conds
    torch.manual_seed(0)  # ToMe's random token choice
    if noise is None:
        noise = seeded_noise(IMAGES, seed=4)
    if latent is None:
        return sample(model, noise, positive, negative, cfg=CFG, steps=STEPS)
    import comfy.sample

    return comfy.sample.sample(model, noise, STEPS, CFG, "euler", "normal", positive, negative, latent, seed=0, disable_pbar=True)


def max_diff(a, b):
    return (a - b).abs().max().item()


def assert_reference_as(out, expected):
    assert max_diff(out[0], expected) < REFERENCE_RELATIVE_TOLERANCE * max(1.0, expected.abs().max().item())


def assert_targets_changed(out, alone):
    assert max_diff(out[1:], alone[1:]) > 0.05 * alone.abs().mean().item()


@pytest.mark.parametrize("ours_first", [True, False], ids=["stylealigned_first", "stylealigned_last"])
@pytest.mark.parametrize("node_id", list(HOST_PATCHES))
def test_host_patch_composes(model, conds, node_id, ours_first):
    if ours_first:
        patched = host_patch(node_id, style_aligned(model))
    else:
        patched = style_aligned(host_patch(node_id, model))
    out = run(patched, conds)
    alone = run(host_patch(node_id, model), conds)
    assert out.shape == alone.shape and out.isfinite().all()
    if node_id not in COUPLES_ROWS:
        assert_reference_as(out, alone[0])
    assert_targets_changed(out, alone)


@pytest.mark.parametrize("node_id", ["PerturbedAttentionGuidance", "SelfAttentionGuidance"])
def test_replaced_self_attention_is_left_to_its_node(model, conds, node_id, monkeypatch):
    """A layer another node replaced gets no reference tokens: that node's attention sees only its own."""
    import comfy.model_patcher

    seen_tokens = []
    install_replace = comfy.model_patcher.set_model_options_patch_replace

    def install_spied(model_options, patch, *args, **kwargs):
        def spy(q, k, v, extra_options, *more, **named):
            seen_tokens.append((q.shape[1], k.shape[1], v.shape[1]))
            return patch(q, k, v, extra_options, *more, **named)

        return install_replace(model_options, spy, *args, **kwargs)

    # PAG installs its replace patch only inside its own extra model call, SAG on the model: spy on both.
    monkeypatch.setattr(comfy.model_patcher, "set_model_options_patch_replace", install_spied)
    run(style_aligned(host_patch(node_id, model)), conds)
    assert seen_tokens and all(q == k == v for q, k, v in seen_tokens)


def test_patched_twice_is_patched_once_with_the_later_settings(model, conds):
    later = {"reference_index": 1, "reference_strength": 2.0, "adain_values": True, "end_percent": 0.7}
    earlier = {"reference_index": 0, "reference_strength": 0.5, "share_output_blocks": False}
    once = run(style_aligned(model, **later), conds)
    twice = run(style_aligned(style_aligned(model, **earlier), **later), conds)
    assert torch.equal(once, twice)
    # The earlier override and attn1 patch are gone, not chained under the later ones.
    options = style_aligned(style_aligned(model, reference_strength=2.0)).model_options["transformer_options"]
    assert options["optimized_attention_override"].previous_override is None
    assert len(options["patches"]["attn1_patch"]) == 1


def test_patched_twice_keeps_other_nodes_patches_in_order(model, conds):
    later = {"reference_strength": 1.5}
    between = style_aligned(host_patch("HyperTile", style_aligned(model, reference_strength=3.0)), **later)
    expected = style_aligned(host_patch("HyperTile", model), **later)
    attn1 = [type(p).__name__ for p in between.model_options["transformer_options"]["patches"]["attn1_patch"]]
    assert attn1 == [type(p).__name__ for p in expected.model_options["transformer_options"]["patches"]["attn1_patch"]]
    assert torch.equal(run(between, conds), run(expected, conds))
    pag_between = style_aligned(host_patch("PerturbedAttentionGuidance", style_aligned(model, reference_index=2)))
    assert torch.equal(run(pag_between, conds), run(style_aligned(host_patch("PerturbedAttentionGuidance", model)), conds))


def test_patching_again_leaves_the_input_model_alone(model, conds):
    first = style_aligned(model, reference_strength=2.0)
    before = run(first, conds)
    style_aligned(first, reference_index=2)
    assert torch.equal(run(first, conds), before)
    assert len(first.get_all_wrappers("apply_model")) == 1


def ignoring_wrapper(apply_model, args):
    """A model_function_wrapper that replaces whatever wrapper was there without calling it."""
    return apply_model(args["input"], args["timestep"], **args["c"])


def test_a_later_unchained_model_function_wrapper_keeps_our_per_call_logic(model, conds, pack, error_type):
    patched = style_aligned(model)
    wrapped = patched.clone()
    wrapped.set_model_unet_function_wrapper(ignoring_wrapper)
    assert torch.equal(run(wrapped, conds), run(patched, conds))

    def drops_the_attn1_patches(apply_model, args):
        c = dict(args["c"])
        c["transformer_options"] = dict(c["transformer_options"], patches={})
        return apply_model(args["input"], args["timestep"], **c)

    unpatched = patched.clone()
    unpatched.set_model_unet_function_wrapper(drops_the_attn1_patches)
    with pytest.raises(error_type, match="never ran the self-attention patch"):
        run(unpatched, conds)


# --- LoRA, ControlNet, with a generated and a real-image reference ---------------------------------------

@pytest.fixture(scope="module")
def lora_name(tmp_path_factory, model):
    """A tiny LoRA file for every linear layer of the tiny UNet's transformer blocks, in the lora_unet_ format."""
    load_host()
    import comfy.utils
    import folder_paths

    generator = torch.Generator().manual_seed(7)
    tensors = {}
    for key, weight in model.model.diffusion_model.state_dict().items():
        if ".transformer_blocks." in key and key.endswith(".weight") and weight.ndim == 2:
            name = "lora_unet_" + key[: -len(".weight")].replace(".", "_")
            tensors[name + ".lora_up.weight"] = 0.3 * torch.randn(weight.shape[0], 2, generator=generator)
            tensors[name + ".lora_down.weight"] = torch.randn(2, weight.shape[1], generator=generator) / weight.shape[1] ** 0.5
            tensors[name + ".alpha"] = torch.tensor(2.0)
    folder = tmp_path_factory.mktemp("loras")
    comfy.utils.save_torch_file(tensors, str(folder / "stylealigned-tiny-lora.safetensors"))
    folder_paths.add_model_folder_path("loras", str(folder))
    return "stylealigned-tiny-lora.safetensors"


def with_lora(model, lora_name):
    node = host_node_class("LoraLoaderModelOnly")
    return node().load_lora_model_only(model, lora_name, 1.0)[0]


@pytest.fixture(scope="module")
def control_conds(conds, pack):
    hint = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(8))
    node = host_node_class("ControlNetApplyAdvanced")()
    return node.apply_controlnet(conds[0], conds[1], tiny_controlnet(), hint, 0.05, 0.0, 1.0)[:2]


@pytest.fixture(scope="module")
def image_latent():
    generator = torch.Generator().manual_seed(21)
    coarse = torch.nn.functional.interpolate(torch.randn(1, 4, 2, 2, generator=generator), size=(8, 8), mode="bilinear")
    return coarse * 4 + torch.randn(1, 4, 8, 8, generator=generator)


@pytest.fixture(scope="module")
def reference(model, image_latent, pack):
    node = host_node_class("StyleAlignedInvertReference")
    values = node_defaults("StyleAlignedInvertReference")
    values.update(model=model, clip=tiny_clip("sd15"), latent={"samples": image_latent}, prompt="a red toy", steps=4)
    return node.execute(**values).result[0]


def test_lora_loaded_model_composes_both_orders(model, conds, lora_name):
    lora_first = style_aligned(with_lora(model, lora_name))
    ours_first = with_lora(style_aligned(model), lora_name)
    alone = run(with_lora(model, lora_name), conds)
    assert max_diff(alone, run(model, conds)) > 1e-2  # the LoRA does change the model
    for patched in (lora_first, ours_first):
        out = run(patched, conds)
        assert_reference_as(out, alone[0])
        assert_targets_changed(out, alone)


def test_controlnet_composes(model, control_conds):
    alone = run(model, control_conds)
    out = run(style_aligned(model), control_conds)
    assert_reference_as(out, alone[0])
    assert_targets_changed(out, alone)


@pytest.mark.parametrize("extra", ["lora_first", "lora_last", "controlnet", "pag_last", "unchained_wrapper"])
def test_real_image_reference_is_held_with(model, conds, control_conds, lora_name, reference, image_latent, extra):
    latent = torch.cat([image_latent, torch.zeros(IMAGES - 1, 4, 8, 8)])
    base = with_lora(model, lora_name) if extra == "lora_first" else model
    patched = style_aligned(base, reference=reference)
    if extra == "lora_last":
        patched = with_lora(patched, lora_name)
    elif extra == "pag_last":
        patched = host_patch("PerturbedAttentionGuidance", patched)
    elif extra == "unchained_wrapper":
        patched = patched.clone()
        patched.set_model_unet_function_wrapper(ignoring_wrapper)
    used_conds = control_conds if extra == "controlnet" else conds
    out = run(patched, used_conds, latent=latent)
    assert_reference_as(out, image_latent[0])
    alone = run(base if extra != "lora_last" else with_lora(model, lora_name), used_conds, latent=latent)
    assert_targets_changed(out, alone)


# Guidance that changes the denoised prediction after CFG from the reference's own prediction: SAG adds
# (blur(prediction) - prediction) * scale, Epsilon Scaling divides the noise prediction; the held slot is
# replaced in the model call, before them, so they move it (by 1.4 and 0.003 on the tiny model).
MOVES_HELD_REFERENCE = {"SelfAttentionGuidance", "Epsilon Scaling"}


@pytest.mark.parametrize("ours_first", [True, False], ids=["stylealigned_first", "stylealigned_last"])
@pytest.mark.parametrize("node_id", list(HOST_PATCHES))
def test_real_image_reference_with_host_patch(model, conds, reference, image_latent, node_id, ours_first):
    latent = torch.cat([image_latent, torch.zeros(IMAGES - 1, 4, 8, 8)])
    if ours_first:
        patched = host_patch(node_id, style_aligned(model, reference=reference))
    else:
        patched = style_aligned(host_patch(node_id, model), reference=reference)
    out = run(patched, conds, latent=latent)
    assert out.isfinite().all()
    if node_id in MOVES_HELD_REFERENCE:
        assert max_diff(out[0], image_latent[0]) > 1e-4
    else:
        assert_reference_as(out, image_latent[0])


# --- a later node that replaces the attention override without chaining (ComfyUI 0.33) ------------------

def attention_backend(model):
    """ComfyUI 0.33's ModelAttentionBackend (set_model_optimized_attention replaces the override slot)."""
    if "ModelAttentionBackend" not in host_node_classes():
        pytest.skip("this ComfyUI has no ModelAttentionBackend node (added after 0.3.75)")
    return host_patch("ModelAttentionBackend", model, attention="pytorch attention")


@pytest.mark.parametrize("order", ["backend_last", "backend_first"])
@pytest.mark.parametrize("extra", [{"reference_strength": 0.5}, {"reference_strength": 0.5, "hypertile": True}], ids=["strength", "strength_hypertile"])
def test_attention_backend_node_keeps_every_effect(model, conds, order, extra):
    """Both orders give the images of StyleAligned alone: reference_strength and the HyperTile key
    re-layout live in the pack's override, which goes back in front of the backend node's."""
    inputs = {key: value for key, value in extra.items() if key != "hypertile"}

    def with_hypertile(m):
        return host_patch("HyperTile", m) if extra.get("hypertile") else m

    alone = run(with_hypertile(style_aligned(model, **inputs)), conds)
    if order == "backend_last":
        patched = attention_backend(with_hypertile(style_aligned(model, **inputs)))
    else:
        patched = with_hypertile(style_aligned(attention_backend(model), **inputs))
    out = run(patched, conds)
    assert max_diff(out, alone) < 1e-5 * max(1.0, alone.abs().max().item())
    plain = run(with_hypertile(attention_backend(model)), conds)
    assert_reference_as(out, plain[0])
    assert max_diff(out, run(with_hypertile(style_aligned(model)), conds)) > 1e-3  # the strength mattered


def test_override_lost_inside_the_model_call_is_said(model, conds, caplog):
    """A node that empties the override slot inside the model call (after the pack's wrapper) loses
    reference_strength there: one warning naming the node."""
    import logging

    import comfy.patcher_extension

    def drops_override(executor, x, timesteps=None, context=None, y=None, control=None, transformer_options={}, **kwargs):
        options = {key: value for key, value in transformer_options.items() if key != "optimized_attention_override"}
        return executor(x, timesteps, context, y, control, options, **kwargs)

    # AdaIN on the projection inputs: only the strength is lost, which is said once.
    patched = style_aligned(model, reference_strength=0.5, adain_on="inputs").clone()
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "test_drops_override", drops_override)
    with caplog.at_level(logging.WARNING):
        run(patched, conds)
    said = [r.getMessage() for r in caplog.records if "without StyleAligned's attention override" in r.getMessage()]
    assert len(said) == 1 and "StyleAlignedPatch" in said[0] and "reference_strength (0.5)" in said[0]
    # AdaIN on the projections (the default) would be lost entirely: an error naming the node and adain_on.
    patched = style_aligned(model, reference_strength=0.5).clone()
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "test_drops_override", drops_override)
    with pytest.raises(Exception, match="StyleAlignedPatch: adain_on is 'projections \\(paper\\)'"):
        run(patched, conds)
