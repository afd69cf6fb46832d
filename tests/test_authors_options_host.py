"""The authors' options on the real sampler (adain_on "projections (paper)", full_attention_sharing): a
whole sampling run equals the same tiny UNet whose self-attention modules run an independent implementation
of the authors' processor maths (their sa_handler.py)."""

import math
import types

import pytest
import torch

from host.sampling import sample, seeded_noise, style_aligned
from host.tiny_models import tiny_conditioning, tiny_model

PAPER = "projections (paper)"


def authors_self_attention(module, x, context=None, value=None, mask=None, transformer_options={}):
    """The authors' SharedAttentionProcessor.shared_call on this CrossAttention's weights (float64 maths):
    adain on the projected q/k split into heads (var with Bessel's correction + 1e-5), the chunk's reference
    keys/values appended, softmax attention, to_out."""
    chunks = len(transformer_options.get("cond_or_uncond") or [0])
    rows, tokens, _ = x.shape
    images, heads = rows // chunks, module.heads
    reference = torch.tensor([(row // images) * images for row in range(rows)])

    def split(t):
        return t.double().reshape(rows, tokens, heads, -1).transpose(1, 2)

    q, k, v = split(module.to_q(x)), split(module.to_k(x)), split(module.to_v(x))

    def adain(feat):
        mean, std = feat.mean(dim=-2, keepdim=True), (feat.var(dim=-2, keepdim=True) + 1e-5).sqrt()
        return (feat - mean) / std * std[reference] + mean[reference]

    q, k = adain(q), adain(k)
    k, v = torch.cat([k, k[reference]], dim=-2), torch.cat([v, v[reference]], dim=-2)
    weights = (q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])).softmax(-1)
    out = (weights @ v).transpose(1, 2).reshape(rows, tokens, -1)
    return module.to_out(out.to(x.dtype))


def authors_full_sharing(module, x, context=None, value=None, mask=None, transformer_options={}):
    """Their full_attention_share branch: '(k b) n d -> k (b n) d', the plain processor, and back."""
    chunks = len(transformer_options.get("cond_or_uncond") or [0])
    rows, tokens, channels = x.shape
    sequence = x.reshape(chunks, -1, channels)
    heads = module.heads

    def split(t):
        return t.double().reshape(chunks, t.shape[1], heads, -1).transpose(1, 2)

    q, k, v = split(module.to_q(sequence)), split(module.to_k(sequence)), split(module.to_v(sequence))
    weights = (q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])).softmax(-1)
    out = (weights @ v).transpose(1, 2).reshape(chunks, -1, heads * q.shape[-1])
    return module.to_out(out.to(x.dtype)).reshape(rows, tokens, -1)


def with_authors_processor(kind, processor=authors_self_attention):
    model = tiny_model(kind)  # the test's own copy: its modules may be changed
    for name, module in model.model.diffusion_model.named_modules():
        if name.endswith("attn1"):
            module.forward = types.MethodType(processor, module)
    return model


@pytest.mark.parametrize("kind", ["sd15", "sdxl"])
def test_sampling_equals_the_authors_processor(pack, kind):
    noise = seeded_noise(3, seed=4)
    positive, negative = tiny_conditioning(kind, batch=1, seed=1), tiny_conditioning(kind, batch=1, seed=2)
    paper = sample(style_aligned(tiny_model(kind), adain_on=PAPER), noise, positive, negative, steps=2)
    oracle = sample(with_authors_processor(kind), noise, positive, negative, steps=2)
    # Within 1e-4 of the latents' scale (a random UNet's latents reach hundreds; float32 rounding grows with them).
    assert (paper - oracle).abs().max().item() < 1e-4 * max(1.0, oracle.abs().max().item())
    inputs = sample(style_aligned(tiny_model(kind), adain_on="inputs"), noise, positive, negative, steps=2)
    plain = sample(tiny_model(kind), noise, positive, negative, steps=2)
    assert (paper[0] - plain[0]).abs().max() < 1e-3 and (inputs[0] - plain[0]).abs().max() < 1e-3  # the reference as without the pack
    difference = (paper[1:] - inputs[1:]).norm() / (inputs[1:] - plain[1:]).norm()
    print(f"\n{kind}: projections vs inputs, relative to StyleAligned's effect: {float(difference):.4f}")
    assert 1e-4 < float(difference) < 0.5


def test_no_leakage_between_targets(pack):
    model = style_aligned(tiny_model("sd15"), adain_on=PAPER)
    positive, negative = tiny_conditioning("sd15", seed=1), tiny_conditioning("sd15", seed=2)
    noise = seeded_noise(4, seed=7)
    changed = noise.clone()
    changed[3] = seeded_noise(1, seed=8)[0]
    first, second = sample(model, noise, positive, negative), sample(model, changed, positive, negative)
    assert (first[3] - second[3]).abs().max() > 1e-2
    assert (first[:3] - second[:3]).abs().max() < 1e-5


def test_unknown_adain_on_is_refused(pack, error_type):
    with pytest.raises(error_type) as error:
        style_aligned(tiny_model("sd15"), adain_on="outputs")
    assert "StyleAlignedPatch" in str(error.value) and "adain_on" in str(error.value)


@pytest.mark.parametrize("kind", ["sd15", "sdxl"])
def test_full_attention_sharing_equals_the_authors_baseline(pack, kind):
    noise = seeded_noise(3, seed=5)
    positive, negative = tiny_conditioning(kind, batch=1, seed=1), tiny_conditioning(kind, batch=1, seed=2)
    full = sample(style_aligned(tiny_model(kind), full_attention_sharing=True), noise, positive, negative, steps=2)
    oracle = sample(with_authors_processor(kind, authors_full_sharing), noise, positive, negative, steps=2)
    assert (full - oracle).abs().max().item() < 1e-4 * max(1.0, oracle.abs().max().item())
    plain = sample(tiny_model(kind), noise, positive, negative, steps=2)
    assert (full[0] - plain[0]).abs().max() > 1e-2  # the reference changes too (said in the tooltip)


def test_full_attention_sharing_with_cond_and_uncond_in_separate_calls(pack):
    """Each call's own chunks: the host under memory pressure runs cond and uncond apart; the result is the same."""
    from host.sampling import split_chunk_wrapper

    noise = seeded_noise(3, seed=6)
    positive, negative = tiny_conditioning("sd15", seed=1), tiny_conditioning("sd15", seed=2)
    model = style_aligned(tiny_model("sd15"), full_attention_sharing=True)
    together = sample(model, noise, positive, negative, steps=2)
    split = model.clone()
    calls = []
    split.set_model_unet_function_wrapper(split_chunk_wrapper(calls))
    apart = sample(split, noise, positive, negative, steps=2)
    assert calls and set(calls) == {1}
    assert (together - apart).abs().max().item() < 1e-4 * max(1.0, together.abs().max().item())


def with_authors_shared_norm(kind, images):
    """The authors' register_shared_norm on a test-owned model: every GroupNorm concatenates each image's
    map with its half's reference map (slot 0) along the height axis and keeps the image's part."""
    model = tiny_model(kind)
    for module in model.model.diffusion_model.modules():
        if isinstance(module, torch.nn.GroupNorm):
            original = module.forward

            def forward(x, original=original):
                reference = x[torch.tensor([(row // images) * images for row in range(x.shape[0])])]
                return original(torch.cat([x, reference], dim=-2))[..., : x.shape[-2], :]

            module.forward = forward
    return model


@pytest.mark.parametrize("kind", ["sd15", "sdxl"])
def test_shared_group_norm_equals_the_authors(pack, kind):
    noise = seeded_noise(3, seed=8)
    positive, negative = tiny_conditioning(kind, batch=1, seed=1), tiny_conditioning(kind, batch=1, seed=2)
    model = tiny_model(kind)
    shared = sample(style_aligned(model, share_group_norm=True), noise, positive, negative, steps=2)
    oracle = sample(style_aligned(with_authors_shared_norm(kind, 3)), noise, positive, negative, steps=2)
    assert (shared - oracle).abs().max().item() < 1e-4 * max(1.0, oracle.abs().max().item())
    attention_only = sample(style_aligned(model), noise, positive, negative, steps=2)
    assert (shared[1:] - attention_only[1:]).abs().max() > 1e-2
    assert (shared[0] - attention_only[0]).abs().max() < 1e-4  # the reference normalises alone
    # The shared model's modules are as before: the host removed the object patches after sampling.
    for module in model.model.diffusion_model.modules():
        if isinstance(module, torch.nn.GroupNorm):
            assert getattr(module.forward, "__func__", None) is type(module).forward
    assert torch.equal(sample(style_aligned(model), noise, positive, negative, steps=2), attention_only)


def test_shared_group_norm_in_every_batching_mode(pack, error_type):
    """cond and uncond in separate calls, another reference slot, a real-image (noised) reference."""
    from host.sampling import run_node, split_chunk_wrapper

    positive, negative = tiny_conditioning("sd15", seed=1), tiny_conditioning("sd15", seed=2)
    noise = seeded_noise(3, seed=9)
    model = tiny_model("sd15")
    patched = style_aligned(model, share_group_norm=True, reference_index=1)
    together = sample(patched, noise, positive, negative, steps=2)
    split = patched.clone()
    calls = []
    split.set_model_unet_function_wrapper(split_chunk_wrapper(calls))
    apart = sample(split, noise, positive, negative, steps=2)
    assert set(calls) == {1}
    assert (together - apart).abs().max().item() < 1e-4 * max(1.0, together.abs().max().item())
    image = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3)) * 2
    reference = run_node("StyleAlignedInvertReference", model=model, clip=None, latent={"samples": image}, method="noised")[0]
    latent_batch = torch.cat([image, torch.zeros(2, 4, 8, 8)])
    import comfy.sample

    out = comfy.sample.sample(style_aligned(model, share_group_norm=True, reference=reference), noise, 3, 3.0, "euler", "normal",
                              positive, negative, latent_batch, seed=0, disable_pbar=True)
    without = comfy.sample.sample(style_aligned(model, reference=reference), noise, 3, 3.0, "euler", "normal",
                                  positive, negative, latent_batch, seed=0, disable_pbar=True)
    assert (out[0] - image[0]).abs().max() < 1e-3
    assert (out[1:] - without[1:]).abs().max() > 1e-2


def test_shared_group_norm_patches_are_replaced_by_a_later_patch_node(pack):
    SharedGroupNormForward = pack.stylealign_core.unet.shared_group_norm.SharedGroupNormForward
    model = tiny_model("sd15")
    norms = sum(isinstance(m, torch.nn.GroupNorm) for m in model.model.diffusion_model.modules())
    first = style_aligned(model, share_group_norm=True)
    ours = [key for key, patch in first.object_patches.items() if type(patch).__name__ == SharedGroupNormForward.__name__]
    assert len(ours) == norms > 0 and all(key.endswith(".forward") for key in ours)
    assert not model.object_patches  # the input model is left alone
    again = style_aligned(first)
    assert not [p for p in again.object_patches.values() if type(p).__name__ == SharedGroupNormForward.__name__]
    twice = style_aligned(first, share_group_norm=True)
    chained = [p for p in twice.object_patches.values() if type(p).__name__ == SharedGroupNormForward.__name__]
    assert len(chained) == norms and all(type(p.wrapped_forward).__name__ != SharedGroupNormForward.__name__ for p in chained)
