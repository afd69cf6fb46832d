"""Qwen-Image with a text attention mask (a prompt padded with masked tokens), on the real sampler.

ComfyUI 0.33 forwards the conditioning's attention_mask to Qwen-Image, which passes it to attention as the
5th positional argument; the pack must share those calls with the mask kept on each row's own keys and the
appended reference keys unmasked. Then a prompt padded with masked tokens gives the patched images of the
unpadded prompt, as it does without the pack. Hosts that do not apply the mask (0.3.75) skip, saying so.
"""

import pytest
import torch

from host.dit_oracle import max_diff
from host.sampling import sample, style_aligned
from host.tiny_dit_models import dit_conditioning, dit_noise, tiny_dit

PAD = 5


def padded(conditioning, pad=PAD, seed=9):
    """The same prompt with `pad` extra text tokens masked out (attention_mask 1 on the prompt, 0 on pads)."""
    out = []
    for cond, extras in conditioning:
        junk = torch.randn(cond.shape[0], pad, cond.shape[2], generator=torch.Generator().manual_seed(seed))
        mask = torch.cat([torch.ones(cond.shape[0], cond.shape[1]), torch.zeros(cond.shape[0], pad)], dim=1).long()
        out.append([torch.cat([cond, junk], dim=1), dict(extras, attention_mask=mask)])
    return out


@pytest.fixture(scope="module")
def qwen(pack):
    return tiny_dit("qwen_image")


def host_applies_text_mask(model, noise, positive, negative) -> bool:
    plain = sample(model, noise, positive, negative, steps=2)
    padded_plain = sample(model, noise, padded(positive), padded(negative), steps=2)
    return max_diff(plain, padded_plain) < 1e-4


@pytest.mark.parametrize("strength", [1.0, 0.5])
def test_padded_masked_prompt_gives_the_unpadded_prompts_aligned_images(qwen, strength):
    positive, negative = dit_conditioning("qwen_image", seed=1), dit_conditioning("qwen_image", seed=2)
    noise = dit_noise("qwen_image", 3, seed=3)
    if not host_applies_text_mask(qwen, noise, positive, negative):
        pytest.skip("this ComfyUI does not apply Qwen-Image's text attention mask (0.33 does): padded prompts differ even unpatched")
    patched = style_aligned(qwen, reference_strength=strength)
    aligned = sample(patched, noise, positive, negative, steps=2)
    aligned_padded = sample(patched, noise, padded(positive), padded(negative), steps=2)
    plain = sample(qwen, noise, positive, negative, steps=2)
    assert max_diff(aligned[1:], plain[1:]) > 1e-2  # the set is aligned (targets changed)
    assert max_diff(aligned[0], plain[0]) < 1e-5  # the reference as without the pack
    assert max_diff(aligned_padded, aligned) < 1e-4 * max(1.0, aligned.abs().max().item())


def test_mask_only_on_the_positive_prompt(qwen):
    """Chunks of one model call with and without a mask (cond padded, uncond not) batch separately or
    together as the host decides; either way each row keeps its own mask."""
    positive, negative = dit_conditioning("qwen_image", seed=1), dit_conditioning("qwen_image", seed=2)
    noise = dit_noise("qwen_image", 3, seed=4)
    if not host_applies_text_mask(qwen, noise, positive, negative):
        pytest.skip("this ComfyUI does not apply Qwen-Image's text attention mask (0.33 does)")
    patched = style_aligned(qwen)
    aligned = sample(patched, noise, positive, negative, steps=2)
    assert max_diff(sample(patched, noise, padded(positive), negative, steps=2), aligned) < 1e-4 * max(1.0, aligned.abs().max().item())
