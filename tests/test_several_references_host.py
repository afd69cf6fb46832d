"""Several weighted references (StyleAlignedReferences -> StyleAlignedPatch) on the real host: tiny random
SD1.5 / SDXL UNets and Flux / Chroma transformers through the host's sampler.

On Flux the whole model call is held against an independent implementation written here from the
equations (AdaIN of the targets' pre-RoPE image q/k to the references' weighted mixture, keys
[own ; lambda R(p + i W) k_i] with log w_i on reference i's logits, references on their own keys only),
put in place of the host's attention function; the core equations per layer are in
test_core_several_references.py."""

import math

import pytest
import torch

from host.comfy_env import host_node_class
from host.sampling import run_node, sample, seeded_noise, style_aligned
from host.tiny_dit_models import TEXT_TOKENS, dit_conditioning, dit_noise, tiny_dit
from host.tiny_models import tiny_conditioning, tiny_model
from test_core_several_references import adain_to_mixture
from test_transformer_host import LAMBDA, LATENT, own_rope, rotate_pairs

REFERENCE_TOLERANCE = 1e-3


def max_diff(a, b):
    return (a - b).abs().max().item()


def listed(*pairs):
    """StyleAlignedReferences nodes chained in order: ((slot, weight), ...)."""
    references = None
    for slot, weight in pairs:
        inputs = {"slot": slot, "weight": weight}
        if references is not None:
            inputs["references"] = references
        references = run_node("StyleAlignedReferences", **inputs)[0]
    return references


# ---- UNets ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=["sd15", "sdxl"])
def kind(request, pack):
    return request.param


@pytest.fixture(scope="module")
def unet(kind):
    return tiny_model(kind)


def conds(kind):
    return tiny_conditioning(kind, batch=1, seed=1), tiny_conditioning(kind, batch=1, seed=2)


@pytest.mark.parametrize("adain_on", ["projections (paper)", "inputs"])
def test_unet_references_unchanged_targets_blend(unet, kind, adain_on):
    positive, negative = conds(kind)
    noise = seeded_noise(5, seed=21)
    plain = sample(unet, noise, positive, negative, cfg=3.0)
    both = sample(style_aligned(unet, adain_on=adain_on, references=listed((3, 1.0), (0, 0.5))), noise, positive, negative)
    first = sample(style_aligned(unet, adain_on=adain_on, reference_index=3), noise, positive, negative)
    assert both.isfinite().all()
    for reference in (0, 3):
        assert max_diff(both[reference], plain[reference]) < REFERENCE_TOLERANCE
    scale = plain.abs().mean().item()
    for target in (1, 2, 4):
        assert max_diff(both[target], plain[target]) > 0.05 * scale
        assert max_diff(both[target], first[target]) > 1e-3 * scale  # the second reference counts


def test_unet_weights_one_and_zero_equal_a_single_reference_exactly(unet, kind):
    positive, negative = conds(kind)
    noise = seeded_noise(4, seed=22)
    single = sample(style_aligned(unet, reference_index=1), noise, positive, negative)
    listed_single = sample(style_aligned(unet, references=listed((1, 1.0), (2, 0.0))), noise, positive, negative)
    assert torch.equal(single, listed_single)


def test_unet_no_leakage_between_targets(unet, kind):
    positive, negative = conds(kind)
    patched = style_aligned(unet, references=listed((0, 1.0), (1, 2.0)))
    noise = seeded_noise(5, seed=23)
    changed = noise.clone()
    changed[3] = seeded_noise(1, seed=99)[0]
    first = sample(patched, noise, positive, negative)
    second = sample(patched, changed, positive, negative)
    assert max_diff(first[3], second[3]) > 0.1
    for untouched in (0, 1, 2, 4):
        assert max_diff(first[untouched], second[untouched]) < 1e-4


def test_unet_references_compose_with_hypertile(pack):
    model = tiny_model("sd15")
    positive, negative = conds("sd15")
    tiled = host_node_class("HyperTile").execute(model, tile_size=32, swap_size=1, max_depth=0, scale_depth=False)[0]
    noise = seeded_noise(4, seed=24)
    plain = sample(tiled, noise, positive, negative)
    patched = sample(style_aligned(tiled, references=listed((0, 1.0), (2, 0.5))), noise, positive, negative)
    assert patched.isfinite().all()
    for reference in (0, 2):
        assert max_diff(patched[reference], plain[reference]) < REFERENCE_TOLERANCE
    assert max_diff(patched[[1, 3]], plain[[1, 3]]) > 1e-3


def test_errors_name_the_node_and_input(pack, error_type):
    model = tiny_model("sd15")
    positive, negative = conds("sd15")
    with pytest.raises(error_type, match="StyleAlignedReferences: slot 1 is listed twice"):
        listed((1, 1.0), (1, 0.5))
    with pytest.raises(error_type, match=r"StyleAlignedPatch: references lists .*: every weight is 0.*\(StyleAlignedReferences, input weight\)"):
        style_aligned(model, references=listed((0, 0.0), (1, 0.0)))
    with pytest.raises(error_type, match="StyleAlignedPatch: references is connected but full_attention_sharing"):
        style_aligned(model, references=listed((0, 1.0)), full_attention_sharing=True)
    with pytest.raises(error_type, match="StyleAlignedPatch: share_group_norm shares each GroupNorm with one reference"):
        style_aligned(model, references=listed((0, 1.0), (1, 1.0)), share_group_norm=True)
    with pytest.raises(error_type, match="StyleAlignedReferences: weight is -1"):
        listed((0, -1.0))
    with pytest.raises(error_type, match="StyleAlignedReferences: slot 5 is outside the latent batch of 3 images"):
        sample(style_aligned(model, references=listed((0, 1.0), (5, 1.0))), seeded_noise(3), positive, negative)


# ---- transformers ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=["flux", "chroma"])
def dit_kind(request, pack):
    return request.param


@pytest.fixture(scope="module")
def dit(dit_kind):
    return tiny_dit(dit_kind)


def dit_conds(kind):
    return dit_conditioning(kind, batch=1, seed=1), dit_conditioning(kind, batch=1, seed=2)


def several_alignedgen_attention(params, images, slots, weights, image_grid, text_tokens=TEXT_TOKENS):
    """attention(q, k, v, pe, mask, transformer_options) for flux/layers.py with several references in the
    single blocks, from the equations (float64 AdaIN, own RoPE at ids shifted by i widths)."""
    import comfy.ldm.flux.math

    original = comfy.ldm.flux.math.attention
    h_len, w_len = image_grid
    ids = torch.zeros(h_len * w_len, len(params.axes_dim))
    ids[:, 1], ids[:, 2] = torch.arange(h_len).repeat_interleave(w_len).float(), torch.arange(w_len).repeat(h_len).float()
    shifted = []
    for i in range(1, len(slots) + 1):
        moved = ids.clone()
        moved[:, 2] += i * w_len
        shifted.append(own_rope(moved, params.axes_dim, params.theta))
    seen = {"shared": 0}

    def attention(q, k, v, pe, mask=None, transformer_options={}):
        if transformer_options.get("block_type") != "single":
            return original(q, k, v, pe=pe, mask=mask, transformer_options=transformer_options)
        seen["shared"] += 1
        rows, heads, tokens, dim = q.shape
        image = slice(text_tokens, text_tokens + h_len * w_len)
        chunks = rows // images
        q, k = q.clone(), k.clone()
        q_in, k_in = q.double(), k.double()
        for chunk in range(chunks):
            base = chunk * images
            for image_slot in range(images):
                if image_slot not in slots:
                    row = base + image_slot
                    q[row, :, image] = adain_to_mixture(q_in[row, :, image], q_in[base:base + images, :, image], slots, weights).to(q.dtype)
                    k[row, :, image] = adain_to_mixture(k_in[row, :, image], k_in[base:base + images, :, image], slots, weights).to(k.dtype)
        q_rot, k_rot = comfy.ldm.flux.math.apply_rope(q, k, pe)
        keys, values = [k_rot.float()], [v.float()]
        bias = [torch.zeros(rows, 1, 1, tokens)]
        for (cos, sin), slot, weight in zip(shifted, slots, weights):
            reference_rows = [(row // images) * images + slot for row in range(rows)]
            keys.append(rotate_pairs(k[reference_rows][:, :, image], cos, sin) * LAMBDA)
            values.append(v[reference_rows][:, :, image].float())
            block = torch.full((rows, 1, 1, h_len * w_len), math.log(weight))
            for row in range(rows):
                if row % images in slots:
                    block[row] = -math.inf  # a reference sees only its own keys
            bias.append(block)
        out = torch.nn.functional.scaled_dot_product_attention(
            q_rot.float(), torch.cat(keys, dim=2), torch.cat(values, dim=2), attn_mask=torch.cat(bias, dim=-1))
        return out.transpose(1, 2).reshape(rows, tokens, heads * dim).to(q.dtype)

    return attention, seen


def test_flux_forward_equals_the_independent_implementation(dit, dit_kind, monkeypatch):
    import comfy.ldm.flux.layers

    positive, negative = dit_conds(dit_kind)
    noise = dit_noise(dit_kind, 5, seed=31)
    slots, weights = (3, 0), (1.0, 0.4)
    patched = sample(style_aligned(dit, references=listed(*zip(slots, weights))), noise, positive, negative, cfg=3.0, steps=1)
    plain = sample(dit, noise, positive, negative, cfg=3.0, steps=1)
    attention, seen = several_alignedgen_attention(dit.model.diffusion_model.params, 5, slots, weights, (LATENT // 2, LATENT // 2))
    monkeypatch.setattr(comfy.ldm.flux.layers, "attention", attention)
    independent = sample(dit, noise, positive, negative, cfg=3.0, steps=1)
    monkeypatch.undo()
    assert seen["shared"] > 0
    assert max_diff(patched[[1, 2, 4]], plain[[1, 2, 4]]) > 1e-2
    assert max_diff(patched, independent) < 1e-4


def test_flux_references_unchanged_and_one_zero_is_single(dit, dit_kind):
    positive, negative = dit_conds(dit_kind)
    noise = dit_noise(dit_kind, 4, seed=32)
    plain = sample(dit, noise, positive, negative, cfg=3.0, steps=3)
    both = sample(style_aligned(dit, references=listed((0, 1.0), (2, 1.0))), noise, positive, negative, cfg=3.0, steps=3)
    for reference in (0, 2):
        assert max_diff(both[reference], plain[reference]) < 1e-5
    single = sample(style_aligned(dit, reference_index=2), noise, positive, negative, cfg=3.0, steps=3)
    listed_single = sample(style_aligned(dit, references=listed((2, 1.0), (0, 0.0))), noise, positive, negative, cfg=3.0, steps=3)
    assert torch.equal(single, listed_single)


def test_flux_no_leakage_between_targets(dit, dit_kind):
    positive, negative = dit_conds(dit_kind)
    patched = style_aligned(dit, references=listed((1, 0.5), (0, 1.0)))
    noise = dit_noise(dit_kind, 4, seed=33)
    changed = noise.clone()
    changed[3] = dit_noise(dit_kind, 1, seed=99)[0]
    first = sample(patched, noise, positive, negative, steps=3)
    second = sample(patched, changed, positive, negative, steps=3)
    assert max_diff(first[3], second[3]) > 0.1
    for untouched in (0, 1, 2):
        assert max_diff(first[untouched], second[untouched]) < 1e-5


# ---- a set in batches (StyleAlignedSplitSet with references) ------------------------------------------

def test_split_set_with_two_references_equals_one_batch(pack):
    """Every batch holds both references at their slots; sampled batch by batch and gathered, the set equals
    the whole set in one batch (float64 model: the split alone could make a difference)."""
    model = tiny_model("sd15", dtype=torch.float64)
    references = listed((0, 1.0), (2, 0.5))
    patched = style_aligned(model, references=references)
    positive, negative = tiny_conditioning("sd15", batch=7, seed=3), tiny_conditioning("sd15", seed=4)
    latent = {"samples": torch.zeros(7, 4, 8, 8)}

    def ksampler(latent_part, positive_part, negative_part):
        return host_node_class("KSampler")().sample(patched, 7, 3, 3.0, "euler", "normal", positive_part, negative_part, latent_part)[0]["samples"]

    output = host_node_class("StyleAlignedSplitSet").execute(
        positive=positive, negative=negative, latent=latent, reference_index=0, images_per_batch=4, references=references)
    positives, negatives, latents, plan = output.result
    assert plan.chunks == ((0, 1, 2, 3), (0, 4, 2, 5), (0, 6, 2))
    assert "batch 3: images 0 (reference 1), 6, 2 (reference 2)" in plan.describe()
    parts = [ksampler(l, p, n) for p, n, l in zip(positives, negatives, latents)]
    chunked = host_node_class("StyleAlignedGatherSet").execute(images=parts, set_chunks=[plan]).result[0]
    one_batch = ksampler(latent, positive, negative)
    assert float((chunked - one_batch).abs().max()) <= 1e-4
    plain = host_node_class("KSampler")().sample(model, 7, 3, 3.0, "euler", "normal", positive, negative, latent)[0]["samples"]
    for reference in (0, 2):
        assert float((one_batch[reference] - plain[reference]).abs().max()) <= 1e-4
    assert all(float((one_batch[i] - plain[i]).abs().max()) > 1e-2 for i in (1, 3, 4, 5, 6))
