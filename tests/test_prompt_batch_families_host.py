"""StyleAlignedPromptBatch with every family's text-encoder output layout (one prompt per image), then the
patched tiny model where the family has one.

Layouts from tests/host/standin_layout_clips.py (HiDream's per-layer Llama features, Wan's UMT5, Ideogram 4,
HunyuanImage 2.1's optional ByT5 features, Anima's 1-D T5 ids, Lens, Kandinsky 5) and HiDream-O1's real,
tokenizer-only text encoder (the host's own classes: its decoder runs inside the diffusion model).
Each image's row of the batch is its own prompt's encoding, whatever key it sits under; what a family's
model cannot take per image is refused by the node with the key and the cause.
"""

import pytest
import torch

from host.sampling import run_node, sample, style_aligned
from host.standin_layout_clips import StandInLayoutClip
from host.tiny_dit_models import dit_conditioning, dit_noise, tiny_dit

LINES = ["a toy train", "a boat on a calm lake", "a red kite"]
NODE = "StyleAlignedPromptBatch"


def batch(clip, lines=LINES, style=""):
    conditioning, count, _ = run_node(NODE, clip=clip, prompts="\n".join(lines), style=style)
    assert count == len(lines) and len(conditioning) == 1
    return conditioning


def alone(clip, line):
    return clip.encode(line)


def row_is_own_prompt(value: torch.Tensor, own: torch.Tensor, row: int, token_axis: int | None):
    """The batch's row equals the prompt's own output, repeated along its token axis where it was lengthened."""
    got = value[row : row + 1]
    if token_axis is not None and got.shape[token_axis] != own.shape[token_axis]:
        length = own.shape[token_axis]
        assert got.shape[token_axis] % length == 0 or got.shape[token_axis] > length
        got = got.narrow(token_axis, 0, length)
    assert torch.equal(got, own.to(got.dtype))


def sample_aligned(kind: str, positive, negative, seed: int):
    """Samples the tiny model with and without the patch; asserts the reference (slot 0) comes out as
    without it and the targets are styled. Returns (patched model, noise, aligned)."""
    model = tiny_dit(kind)
    noise = dit_noise(kind, positive[0][0].shape[0], seed=seed)
    patched = style_aligned(model)
    plain = sample(model, noise, positive, negative, cfg=3.0, steps=2)
    aligned = sample(patched, noise, positive, negative, cfg=3.0, steps=2)
    assert aligned.isfinite().all() and (aligned[0] - plain[0]).abs().max() < 1e-5
    assert (aligned[1:] - plain[1:]).abs().max() > 1e-2
    return patched, noise, aligned


@pytest.mark.parametrize("layout,keys", [
    ("hidream", {"pooled_output": None, "conditioning_llama3": 2}),
    ("wan", {}),
    ("ideogram4", {"attention_mask": 1}),
    ("lens", {"attention_mask": 1}),
    ("kandinsky5", {"pooled_output": None}),
    ("hunyuan_image", {}),
])
def test_each_row_is_its_own_prompt(pack, layout, keys):
    """keys: the per-image outputs of the layout and their token axis (None: no token axis)."""
    clip = StandInLayoutClip(layout)
    cond, extras = batch(clip)[0]
    assert cond.shape[0] == 3
    for row, line in enumerate(LINES):
        own_cond, own_extras = alone(clip, line)
        row_is_own_prompt(cond, own_cond, row, 1)
        for key, axis in keys.items():
            assert extras[key].shape[0] == 3
            row_is_own_prompt(extras[key], own_extras[key], row, axis)
    if layout == "lens":
        assert extras["num_layers_stacked"] == 3
    if layout == "wan":
        assert cond.shape[1] == 512 and extras["pooled_output"] is None


def test_longer_llama_features_are_lengthened_along_their_own_token_axis(pack):
    """HiDream: a prompt past the Llama padding has more Llama tokens than the others; its features' token
    axis (2) is brought to a common length on its own, by whole repetition here (5 and 10 tokens)."""
    clip = StandInLayoutClip("hidream")
    lines = ["a toy train", "one two three four five six seven eight nine ten"]
    cond, extras = batch(clip, lines)[0]
    short, long = alone(clip, lines[0])[1]["conditioning_llama3"], alone(clip, lines[1])[1]["conditioning_llama3"]
    assert extras["conditioning_llama3"].shape == (2, 2, 10, 24)
    assert torch.equal(extras["conditioning_llama3"][0:1], short.repeat(1, 1, 2, 1))
    assert torch.equal(extras["conditioning_llama3"][1:2], long)


def test_quoted_text_in_some_lines_only_is_refused(pack, error_type):
    """HunyuanImage 2.1 encodes quoted text with ByT5 (conditioning_byt5small) only for prompts that quote
    some: the model cannot take those features for some images of a batch only."""
    clip = StandInLayoutClip("hunyuan_image")
    with pytest.raises(error_type) as error:
        batch(clip, ['a sign saying "hello"', "a toy boat", 'a mug saying "tea"'])
    message = str(error.value)
    assert NODE in message and "conditioning_byt5small" in message and "line(s) 1, 3" in message and "line(s) 2" in message
    cond, extras = batch(clip, ['a sign saying "hello"', 'a mug saying "green tea"'])[0]
    assert extras["conditioning_byt5small"].shape[0] == 2


def test_one_prompts_token_list_is_refused(pack, error_type):
    """Anima gives one prompt's T5 token ids as a 1-D tensor (no batch axis): the host's model reads one per
    conditioning, so different prompts cannot share one conditioning batch."""
    with pytest.raises(error_type) as error:
        batch(StandInLayoutClip("anima"))
    assert NODE in str(error.value) and "t5xxl_ids" in str(error.value) and "no batch axis" in str(error.value)


def test_hidream_per_layer_llama_features_sample_per_image(pack):
    """HiDream I1 on the tiny model: the prompt batch (per-image Llama features) samples, the reference as
    without the pack, and each target's prompt is its own (changing line 3 changes image 3 only)."""
    clip = StandInLayoutClip("hidream")
    positive = batch(clip)
    negative = dit_conditioning("hidream", seed=2, tokens=8)
    patched, noise, aligned = sample_aligned("hidream", positive, negative, seed=1)
    other = sample(patched, noise, batch(clip, LINES[:2] + ["a blue kite"]), negative, cfg=3.0, steps=2)
    assert (other[2] - aligned[2]).abs().max() > 1e-3 and (other[:2] - aligned[:2]).abs().max() < 1e-5


def hidream_o1_clip():
    import comfy.sd
    import comfy.supported_models
    from comfy.supported_models_base import ClipTarget

    if not hasattr(comfy.supported_models, "HiDreamO1"):
        pytest.skip("this ComfyUI has no HiDream-O1 (ComfyUI 0.33+)")
    import comfy.text_encoders.hidream_o1 as encoder

    return comfy.sd.CLIP(target=ClipTarget(encoder.HiDreamO1Tokenizer, encoder.HiDreamO1TE), model_options={"dtype": torch.float32})


def test_hidream_o1_prompts_of_one_token_count_sample_per_image(pack):
    """HiDream-O1's encoder gives the prompt's token ids (text_input_ids): prompts of one token count batch
    exactly (each row its own ids) and sample with the patch; the reference as without it."""
    clip = hidream_o1_clip()
    lines = ["a toy train", "a red kite", "a blue boat"]
    positive = batch(clip, lines)
    ids = positive[0][1]["text_input_ids"]
    for row, line in enumerate(lines):
        (own, own_extras), = clip.encode_from_tokens_scheduled(clip.tokenize(line))
        assert torch.equal(ids[row : row + 1], own_extras["text_input_ids"])
    assert len({tuple(row.tolist()) for row in ids}) == 3
    negative = run_node(NODE, clip=clip, prompts="a toy", style="")[0]
    sample_aligned("hidream_o1", positive, negative, seed=2)


def test_hidream_o1_prompts_of_other_token_counts_are_refused(pack, error_type):
    """Token ids cannot be lengthened without changing the prompt, and the model reads one prompt length per
    call: the node names the key and the counts."""
    clip = hidream_o1_clip()
    with pytest.raises(error_type) as error:
        batch(clip, ["a toy train", "a boat on a calm lake"])
    message = str(error.value)
    assert NODE in message and "text_input_ids" in message and "13/16" in message


def test_ideogram4_prompt_batch_samples_per_image(pack):
    """Ideogram 4 on the tiny model: per-image text features with the encoder's attention mask."""
    import comfy.supported_models

    if not hasattr(comfy.supported_models, "Ideogram4"):
        pytest.skip("this ComfyUI has no Ideogram 4 (ComfyUI 0.33+)")
    clip = StandInLayoutClip("ideogram4")
    positive = batch(clip)
    negative = batch(clip, ["blurry"])
    sample_aligned("ideogram4", positive, negative, seed=3)
