"""Test-only CLIP stand-ins that give each family's text-encoder output LAYOUT (the conditioning tensor and
the dict beside it), with small widths and fixed random values per prompt.

The encoders themselves (Llama 3.1 8B, UMT5-XXL, Qwen3-VL 8B, Qwen2.5-VL 7B + ByT5, ...) cannot be built on
the test machines; what StyleAlignedPromptBatch must handle is the shape of what they return, read from the
host's comfy/text_encoders/*.py and model_base.py (ComfyUI 0.33):
- hidream: T5 padded to 128 tokens (here 8), CLIP-L+G pooled (1, 2048; here 24), the Llama 3.1 features of
  every layer under conditioning_llama3 (1, layers, tokens, 4096), padded to 127 tokens (here 2 layers of
  24 channels, padded to 5 tokens); a longer prompt has more tokens there (hidream.py);
- wan: UMT5-XXL padded to 512 tokens, no pooled output (wan.py);
- ideogram4: Qwen3-VL taps flattened (1, tokens, 13 x 4096), an all-ones attention_mask kept (ideogram4.py);
- hunyuan_image: Qwen2.5-VL features, and ByT5 features of the quoted text under conditioning_byt5small only
  when the prompt quotes text (hunyuan_image.py);
- anima: Qwen3 0.6B features, the T5 token ids and weights of one prompt as 1-D tensors, t5xxl_ids /
  t5xxl_weights (anima.py);
- lens: features (1, tokens, layers x width), attention_mask (1, tokens), num_layers_stacked an int
  (gpt_oss.py);
- kandinsky5: Qwen2.5-VL features and CLIP-L's pooled output (kandinsky5.py).
Widths match the tiny models of tests/host where one exists (HiDream: T5 32, pooled 24, Llama 24;
Ideogram 4: 24).
"""

from __future__ import annotations

import torch

WIDTH = 32


def _generator(text: str) -> torch.Generator:
    return torch.Generator().manual_seed(sum(ord(c) * (i + 1) for i, c in enumerate(text)) % 2**31)


def _quoted(text: str) -> str:
    return "".join(text.split('"')[1::2])


def _hidream(words, generator):
    t5 = torch.randn(1, max(8, len(words)), WIDTH, generator=generator)
    llama = torch.randn(1, 2, max(5, len(words)), 24, generator=generator)
    return t5, {"pooled_output": torch.randn(1, 24, generator=generator), "conditioning_llama3": llama}


def _wan(words, generator):
    cond = torch.zeros(1, 512, WIDTH)
    cond[:, : len(words)] = torch.randn(1, len(words), WIDTH, generator=generator)
    return cond, {"pooled_output": None}


def _ideogram4(words, generator):
    tokens = len(words) + 5  # the chat template around the prompt
    return torch.randn(1, tokens, 24, generator=generator), {"pooled_output": None, "attention_mask": torch.ones(1, tokens, dtype=torch.long)}


def _hunyuan_image(words, generator, text):
    extras = {"pooled_output": None}
    quoted = _quoted(text)
    if quoted:
        extras["conditioning_byt5small"] = torch.randn(1, len(quoted) + 1, 16, generator=generator)
    return torch.randn(1, len(words), WIDTH, generator=generator), extras


def _anima(words, generator):
    ids = torch.tensor([sum(map(ord, word)) % 32000 for word in words] + [1], dtype=torch.int)
    return torch.randn(1, len(words), WIDTH, generator=generator), {
        "pooled_output": None, "t5xxl_ids": ids, "t5xxl_weights": torch.ones(len(words) + 1)}


def _lens(words, generator):
    tokens = len(words)
    return torch.randn(1, tokens, 3 * WIDTH, generator=generator), {
        "pooled_output": None, "attention_mask": torch.ones(1, tokens, dtype=torch.long), "num_layers_stacked": 3}


def _kandinsky5(words, generator):
    return torch.randn(1, len(words), WIDTH, generator=generator), {"pooled_output": torch.randn(1, 24, generator=generator)}


LAYOUTS = {
    "hidream": _hidream,
    "wan": _wan,
    "ideogram4": _ideogram4,
    "hunyuan_image": lambda words, generator, text: _hunyuan_image(words, generator, text),
    "anima": _anima,
    "lens": _lens,
    "kandinsky5": _kandinsky5,
}
NEEDS_TEXT = {"hunyuan_image"}


class StandInLayoutClip:
    """A CLIP object whose encode gives the family's output layout: one word = one token, values fixed per
    prompt text."""

    def __init__(self, layout: str):
        self.layout = layout

    def tokenize(self, text: str) -> dict:
        return {"words": [text.split()], "text": [[text]]}

    def encode_from_tokens_scheduled(self, tokens: dict) -> list:
        words, text = tokens["words"][0], tokens["text"][0][0]
        make = LAYOUTS[self.layout]
        generator = _generator(text)
        cond, extras = make(words, generator, text) if self.layout in NEEDS_TEXT else make(words, generator)
        return [[cond, extras]]

    def encode(self, text: str) -> tuple:
        (cond, extras), = self.encode_from_tokens_scheduled(self.tokenize(text))
        return cond, extras
