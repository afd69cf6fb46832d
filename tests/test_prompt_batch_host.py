"""StyleAlignedPromptBatch against the host's own CLIPTextEncode, on tiny random SD1.5 / SDXL encoders."""

import pytest
import torch

from host.comfy_env import host_node_class
from host.sampling import node_output, run_node, sample, seeded_noise, style_aligned
from host.tiny_clip import tiny_clip
from host.tiny_models import tiny_model

LONG_LINE = "a very detailed toy steam locomotive " + "with shiny brass wheels and red paint " * 15
LINES = ["a toy train", LONG_LINE, "a boat"]


@pytest.fixture(scope="module", params=["sd15", "sdxl"])
def kind(request, pack):
    return request.param


@pytest.fixture(scope="module")
def clip(kind):
    return tiny_clip(kind)


def clip_text_encode(clip, text):
    return host_node_class("CLIPTextEncode")().encode(clip, text)[0]


def test_each_image_gets_its_line(clip, kind):
    conditioning, count, targets = run_node("StyleAlignedPromptBatch", clip=clip, prompts="\n".join(LINES) + "\n\n", style="origami")
    assert count == 3 and targets == 2 and len(conditioning) == 1
    cond, extras = conditioning[0]
    assert cond.shape[0] == 3
    lengths = []
    for i, line in enumerate(LINES):
        (alone, alone_extras), = clip_text_encode(clip, f"{line}, origami")
        lengths.append(alone.shape[1])
        repeats = cond.shape[1] // alone.shape[1]
        torch.testing.assert_close(cond[i : i + 1], alone.repeat(1, repeats, 1), atol=1e-6, rtol=0)
        torch.testing.assert_close(extras["pooled_output"][i : i + 1], alone_extras["pooled_output"], atol=1e-6, rtol=0)
    assert lengths[1] > 77 and lengths[0] == 77  # long and uneven prompts
    assert extras["pooled_output"].shape[0] == 3


def test_style_placeholder(clip):
    conditioning, _, _ = run_node("StyleAlignedPromptBatch", clip=clip, prompts="a cat\na dog", style="a watercolor of {prompt}")
    (alone, _), = clip_text_encode(clip, "a watercolor of a dog")
    torch.testing.assert_close(conditioning[0][0][1:2], alone, atol=1e-6, rtol=0)


def test_batched_prompts_sample_with_the_patch(clip, kind):
    conditioning, count, _ = run_node("StyleAlignedPromptBatch", clip=clip, prompts="\n".join(LINES), style="")
    negative = clip_text_encode(clip, "")
    model = tiny_model(kind)
    noise = seeded_noise(count, seed=11)
    plain = sample(model, noise, conditioning, negative)
    aligned = sample(style_aligned(model), noise, conditioning, negative)
    assert aligned.isfinite().all()
    assert (aligned[0] - plain[0]).abs().max() < 1e-3
    # Per-image prompts really differ per image: the batch conditioning is not the first line repeated.
    first_line_only = sample(model, noise, clip_text_encode(clip, LINES[0]), negative)
    assert (plain[1:] - first_line_only[1:]).abs().max() > 1e-2


def test_mismatched_latent_batch_is_explained(clip):
    latent = {"samples": torch.zeros(5, 4, 8, 8)}
    output = node_output("StyleAlignedPromptBatch", clip=clip, prompts="a\nb\nc", style="", latent=latent)
    text = "".join(output.ui.as_dict()["text"])
    assert "5 images for 3 prompts" in text and "repeats" in text
    assert "image 3 (target): line 1: a" in text and "image 4 (target): line 2: b" in text
    fewer = node_output("StyleAlignedPromptBatch", clip=clip, prompts="a\nb\nc", style="", latent={"samples": torch.zeros(2, 4, 8, 8)})
    assert "cuts" in "".join(fewer.ui.as_dict()["text"])


def test_empty_prompt_list_is_an_error(clip, pack):
    with pytest.raises(pack.stylealign_core.StyleAlignedError) as error:
        run_node("StyleAlignedPromptBatch", clip=clip, prompts=" \n\n  ", style="x")
    assert "StyleAlignedPromptBatch" in str(error.value) and "prompts" in str(error.value)
