"""StyleAlignedPromptBatch with Flux- and Chroma-shaped text encoders, then FluxGuidance and a tiny Flux."""

import torch

from host.comfy_env import host_node_class
from host.sampling import run_node, sample, style_aligned
from host.tiny_dit_models import StandInT5Clip, dit_conditioning, dit_noise, tiny_dit

LINES = ["a toy train", "a boat on a lake", "a red kite"]


def test_flux_prompt_batch_with_guidance_samples(pack):
    clip = StandInT5Clip("flux")
    conditioning, count, targets = run_node("StyleAlignedPromptBatch", clip=clip, prompts="\n".join(LINES), style="origami")
    assert count == 3 and targets == 2
    cond, extras = conditioning[0]
    assert cond.shape == (3, 256, 32) and extras["pooled_output"].shape == (3, 24)
    for i, line in enumerate(LINES):
        (alone, alone_extras), = clip.encode_from_tokens_scheduled(clip.tokenize(f"{line}, origami"))
        assert torch.equal(cond[i : i + 1], alone) and torch.equal(extras["pooled_output"][i : i + 1], alone_extras["pooled_output"])
    positive = host_node_class("FluxGuidance")().execute(conditioning, 3.5)
    positive = positive[0] if isinstance(positive, tuple) else positive.result[0]
    assert positive[0][1]["guidance"] == 3.5
    model = tiny_dit("flux")
    noise = dit_noise("flux", 3, seed=1)
    negative = dit_conditioning("flux", seed=2, tokens=256)
    plain = sample(model, noise, positive, negative, cfg=1.0, steps=2)
    aligned = sample(style_aligned(model), noise, positive, negative, cfg=1.0, steps=2)
    assert aligned.isfinite().all() and (aligned[0] - plain[0]).abs().max() < 1e-5
    assert (aligned[1:] - plain[1:]).abs().max() > 1e-2


def test_chroma_prompt_batch_without_pooled_output(pack):
    conditioning, count, _ = run_node("StyleAlignedPromptBatch", clip=StandInT5Clip("chroma"), prompts="\n".join(LINES), style="origami")
    cond, extras = conditioning[0]
    assert count == 3 and cond.shape[0] == 3 and extras["pooled_output"] is None
