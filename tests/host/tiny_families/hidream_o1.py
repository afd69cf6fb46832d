"""Tiny HiDream-O1 (ComfyUI 0.33+): the host's HiDreamO1 config class with a small Qwen3-VL decoder.

The decoder (the host's Llama2_ with the model's text_config_overrides): 2 layers, width 32, 4 query heads
and 2 K/V heads of 16 channels (grouped-query attention: the model calls attention with enable_gqa),
interleaved MRoPE over 8 split-half channel pairs (rope_dims (4, 2, 2)); the real vocabulary, so the
model's special token ids (chat template, timestep token) are its own. A tiny vision tower (edit images
only). Pixel space with 32x32 patches: a 128x128 image is 4x4 image tokens.
The text encoder is tokenizer-only (the decoder runs inside the model), so the conditioning is the chat
template's token ids around random word ids, as the host's HiDreamO1Tokenizer lays them out.
"""

from __future__ import annotations

import torch

from . import TinyDit

TEXT_TOKENS = 6
IMAGE_SIZE = 128  # pixels: 4x4 patches of 32
# <|im_start|> user \n ... <|im_end|> \n <|im_start|> assistant \n <|boi|> <|tms|> (the host's template)
PREFIX = (151644, 872, 198)
SUFFIX = (151645, 198, 151644, 77091, 198, 151669, 151673)

HIDREAM_O1_CONFIG = {
    "image_model": "hidream_o1",
    "text_config_overrides": {
        "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 16, "rope_dims": [4, 2, 2], "rope_theta": 10000.0,
    },
    "vision_config_overrides": {"hidden_size": 16, "num_heads": 2, "intermediate_size": 32, "depth": 1, "num_position_embeddings": 64},
}


def prompt_ids(words: torch.Tensor) -> torch.Tensor:
    """(batch, words) word ids -> (batch, template + words) as the host's tokenizer lays a prompt out."""
    batch = words.shape[0]
    prefix = torch.tensor(PREFIX).expand(batch, -1)
    suffix = torch.tensor(SUFFIX).expand(batch, -1)
    return torch.cat([prefix, words, suffix], dim=1)


def hidream_o1_conditioning(batch: int = 1, seed: int = 1, tokens: int = TEXT_TOKENS, guidance=None) -> list:
    """As the host's tokenizer-only encoder gives it: the ids as a float (batch, L, 1) stand-in and the ids
    themselves under text_input_ids (the model reads those)."""
    generator = torch.Generator().manual_seed(seed)
    ids = prompt_ids(torch.randint(1000, 100000, (batch, tokens), generator=generator))
    return [[ids.float().unsqueeze(-1), {"text_input_ids": ids}]]


TINY_DITS = {
    "hidream_o1": TinyDit("HiDreamO1", HIDREAM_O1_CONFIG, 3, hidream_o1_conditioning, noise_size=IMAGE_SIZE),
}
