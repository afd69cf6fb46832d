"""AdaIN on the projected queries and keys (adain_on "projections (paper)") against an independent
implementation of the authors' attention processor maths (their sa_handler.py: adain on to_q/to_k
outputs split into heads, var with Bessel's correction + 1e-5, the reference's keys/values appended,
scaled dot-product attention), generalised from "reference = row 0 of each of two halves" to any chunks
and reference slot."""

import math

import pytest
import torch

from stylealign_core import PatchRuntime, ReferenceLogitShift, SharedAttentionPatch, StyleAlignedOptions
from stylealign_core.errors import StyleAlignedError
from stylealign_core.model_call_inputs import ModelCallInputs
from stylealign_core.unet.model_call import UNetModelCall
from test_core_runtime import naive_attention

HEADS, DIM, TOKENS = 2, 16, 12


def authors_processor(x, to_q, to_k, to_v, chunks, reference_index, adain_q=True, adain_k=True, adain_v=False, strength=1.0):
    """Their processor's maths, written from the paper's code description (float64)."""
    rows, tokens, _ = x.shape
    images = rows // chunks
    d = DIM // HEADS

    def heads(t):
        return t.double().reshape(rows, tokens, HEADS, d).transpose(1, 2)  # (B, H, L, D)

    q, k, v = heads(to_q(x)), heads(to_k(x)), heads(to_v(x))

    def reference_of(t):  # expand_first: every row gets its chunk's reference row
        idx = torch.tensor([(row // images) * images + reference_index for row in range(rows)])
        return t[idx]

    def adain(feat):
        mean = feat.mean(dim=-2, keepdim=True)
        std = (feat.var(dim=-2, keepdim=True) + 1e-5).sqrt()
        return (feat - mean) / std * reference_of(std) + reference_of(mean)

    if adain_q:
        q = adain(q)
    if adain_k:
        k = adain(k)
    if adain_v:
        v = adain(v)
    k_all, v_all = torch.cat([k, reference_of(k)], dim=-2), torch.cat([v, reference_of(v)], dim=-2)
    logits = q @ k_all.transpose(-1, -2) / math.sqrt(d)
    logits[..., tokens:] += math.log(strength)
    out = logits.softmax(-1) @ v_all
    return out.transpose(1, 2).reshape(rows, tokens, DIM)


def pack_attention(x, to_q, to_k, to_v, chunks, options):
    """The UNet block's path: attn1 patch on the projection inputs, projections, then the override."""
    runtime = PatchRuntime()
    patch = SharedAttentionPatch(options, runtime)
    override = ReferenceLogitShift(runtime)
    extra = {"cond_or_uncond": list(range(chunks)), "block": ("input", 1, 0), "block_index": 0}
    q_in, k_in, v_in = patch(x, x, x, extra)
    return override(naive_attention, to_q(q_in), to_k(k_in), to_v(v_in), HEADS)


def projections(seed=0):
    generator = torch.Generator().manual_seed(seed)
    layers = []
    for _ in range(3):
        layer = torch.nn.Linear(DIM, DIM, bias=False)
        with torch.no_grad():
            layer.weight.copy_(torch.randn(DIM, DIM, generator=generator) / DIM**0.5)
        layers.append(layer)
    return layers


@pytest.mark.parametrize(
    "chunks, images, reference_index, adain_v, strength",
    [(2, 3, 0, False, 1.0), (1, 4, 2, False, 1.0), (3, 2, 1, True, 1.0), (2, 3, 1, False, 2.0), (1, 2, 0, True, 0.5)],
)
def test_projected_adain_equals_the_authors_processor(chunks, images, reference_index, adain_v, strength):
    generator = torch.Generator().manual_seed(chunks * 10 + images)
    # Features with a per-channel offset and scale, as real hidden states have (so the two placements differ).
    x = torch.randn(chunks * images, TOKENS, DIM, generator=generator) * (1 + torch.rand(DIM, generator=generator) * 3) + torch.randn(DIM, generator=generator)
    to_q, to_k, to_v = projections()
    options = StyleAlignedOptions(reference_index=reference_index, adain_values=adain_v, reference_strength=strength, adain_on_projections=True)
    with torch.no_grad():
        got = pack_attention(x, to_q, to_k, to_v, chunks, options)
        want = authors_processor(x, to_q, to_k, to_v, chunks, reference_index, adain_v=adain_v, strength=strength)
        inputs_side = pack_attention(x, to_q, to_k, to_v, chunks, StyleAlignedOptions(reference_index=reference_index, adain_values=adain_v, reference_strength=strength))
    assert (got.double() - want).abs().max().item() < 1e-4
    # The placement matters: AdaIN on the inputs gives other targets (the reference rows agree).
    targets = [row for row in range(chunks * images) if row % images != reference_index]
    assert (inputs_side[targets].double() - want[targets]).abs().max().item() > 1e-3


def test_reference_rows_are_unchanged_and_one_token_maps_are_finite():
    to_q, to_k, to_v = projections(1)
    x = torch.randn(4, TOKENS, DIM)
    options = StyleAlignedOptions(adain_values=True, adain_on_projections=True)
    with torch.no_grad():
        got = pack_attention(x, to_q, to_k, to_v, 2, options)
        alone = naive_attention(to_q(x[[0, 2]]), to_k(x[[0, 2]]), to_v(x[[0, 2]]), HEADS)
        assert torch.allclose(got[[0, 2]], alone, atol=1e-6)
        one_token = pack_attention(torch.ones(4, 1, DIM), to_q, to_k, to_v, 2, options)
    assert one_token.isfinite().all()


def test_tiled_queries_take_the_whole_image_statistics():
    """Queries another patch split into image-major tiles are normalised with each image's full statistics."""
    to_q, to_k, to_v = projections(2)
    x = torch.randn(3, TOKENS, DIM) * 2 + 1
    runtime = PatchRuntime()
    options = StyleAlignedOptions(adain_on_projections=True)
    patch, override = SharedAttentionPatch(options, runtime), ReferenceLogitShift(runtime)
    seen = {}

    def record(q, k, v, heads, **kwargs):
        seen["q"] = q.clone()
        return torch.zeros(q.shape)

    with torch.no_grad():
        q_in, k_in, v_in = patch(x, x, x, {"cond_or_uncond": [0], "block": ("input", 1, 0), "block_index": 0})
        q = to_q(q_in)
        tiled = q.reshape(3 * 2, TOKENS // 2, DIM)  # image-major tiles, as HyperTile lays them out
        override(record, tiled, to_k(k_in), to_v(v_in), HEADS)
        want = q.double()
        mean, std = want.mean(1, keepdim=True), want.std(1, keepdim=True, unbiased=False)
        authors_q = (want - mean) / torch.sqrt(std**2 + 1e-5) * torch.sqrt(std[:1] ** 2 + 1e-5) + mean[:1]
    assert (seen["q"].reshape(3, TOKENS, DIM).double() - authors_q).abs().max().item() < 1e-4


def test_override_not_reached_is_an_error():
    """Another node replacing the attention override without chaining must not silently drop the AdaIN."""
    options = StyleAlignedOptions(adain_on_projections=True)
    runtime = PatchRuntime()
    patch = SharedAttentionPatch(options, runtime)
    x = torch.randn(2, 4, DIM)

    def unet_without_override(model_input, transformer_options):
        for block in range(2):
            patch(x, x, x, {"cond_or_uncond": [0], "block": ("input", block, 0), "block_index": 0})
        return model_input

    args = {"input": torch.randn(2, 4, 2, 2), "timestep": torch.ones(2), "c": {"transformer_options": {"cond_or_uncond": [0]}}, "cond_or_uncond": [0]}
    with pytest.raises(StyleAlignedError, match="projections"):
        UNetModelCall(options, runtime).run(ModelCallInputs(
            x=args["input"], timestep=args["timestep"], transformer_options={"cond_or_uncond": [0]}, run_model=unet_without_override,
        ))


@pytest.mark.parametrize("chunks, images", [(2, 3), (1, 4), (3, 2)])
def test_full_attention_sharing_equals_the_authors_rearrangement(chunks, images):
    """Their full_attention_share: '(k b) n d -> k (b n) d', plain attention, and back (float64 here)."""
    generator = torch.Generator().manual_seed(chunks + images)
    x = torch.randn(chunks * images, TOKENS, DIM, generator=generator)
    to_q, to_k, to_v = projections(3)
    with torch.no_grad():
        got = pack_attention(x, to_q, to_k, to_v, chunks, StyleAlignedOptions(full_attention_sharing=True))
        sequence = x.double().reshape(chunks, images * TOKENS, DIM)
        d = DIM // HEADS

        def split(t):
            return t.reshape(chunks, -1, HEADS, d).transpose(1, 2)

        q, k, v = split(sequence @ to_q.weight.double().T), split(sequence @ to_k.weight.double().T), split(sequence @ to_v.weight.double().T)
        want = ((q @ k.transpose(-1, -2) / math.sqrt(d)).softmax(-1) @ v).transpose(1, 2).reshape(chunks * images, TOKENS, DIM)
    assert (got.double() - want).abs().max().item() < 1e-5
