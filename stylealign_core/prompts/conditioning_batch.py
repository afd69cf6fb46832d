"""One conditioning whose batch holds one prompt per image.

Each prompt's text-encoder output is (1, tokens, C), with tokens a multiple of the encoder window (77),
so prompts of different lengths differ in token count. They are brought to a common length by repeating
each prompt's tokens whole, the way the host itself joins conditionings of different lengths
(comfy/conds.py CONDCrossAttn.concat). In cross-attention (UNets) attending to a token sequence repeated
k times gives exactly the attention over it once. In joint attention (transformers with text and image
tokens in one softmax) repeated text tokens weigh more, as they do when the host itself batches such
conditionings; encoders that pad (T5 to 256 tokens) give prompts up to that length one length, used
exactly as encoded. Encoders that do not pad (Qwen2.5-VL, Qwen3) give lengths whose least common multiple explodes (25 and 26 tokens: 650); beyond the host's own limit on whole
repetition (4x, comfy/conds.py CONDCrossAttn.can_concat) every prompt is instead extended cyclically to the
longest one (its tokens repeated and cut there): bounded cost, approximate, and the node says so.
Per-token outputs of the encoder (the attention mask Qwen3/Qwen2.5-VL encoders give, shape
(1, T_i)) follow their tokens: extended the same way and batched.
Memory is bounded by construction: the batch (lines x common length x width) is filled in place, never
built from stretched copies, and refused past MAX_BATCH_TOKENS token rows (lines x common length).
"""

from __future__ import annotations

import math

import torch

from ..errors import StyleAlignedError


# Whole repetition up to this factor of the longest prompt, as the host allows when it joins conditionings.
MAX_REPEAT_FACTOR = 4
# Our choice: the most token rows (lines x common token length) one prompt batch may hold. In float32 that is
# 96 MiB at CLIP-L's width (768, SD1.5), 256 MiB at SDXL's 2048, 512 MiB at T5-XXL's 4096; e.g. 425
# lines of 77 tokens, or 128 T5 lines padded to 256.
MAX_BATCH_TOKENS = 32768


def common_token_length(lengths: list[int]) -> tuple[int, bool]:
    """(the token count every prompt is brought to, whether by whole repetition: exact in cross-attention).
    Whole repetition only within the host's factor and the token budget."""
    whole = math.lcm(*lengths)
    if whole <= MAX_REPEAT_FACTOR * max(lengths) and whole * len(lengths) <= MAX_BATCH_TOKENS:
        return whole, True
    return max(lengths), False


def check_token_budget(line_tokens: list[int], node_name: str, input_name: str = "prompts") -> None:
    """Refuse a batch of len(line_tokens) lines each brought to the longest line's length past MAX_BATCH_TOKENS."""
    longest = max(line_tokens)
    rows = len(line_tokens) * longest
    if rows > MAX_BATCH_TOKENS:
        line = line_tokens.index(longest) + 1
        raise StyleAlignedError(
            f"{node_name}: {input_name} would make a conditioning of {len(line_tokens)} lines x {longest} tokens = {rows} "
            f"token rows (every line is brought to the longest, line {line}); the limit is {MAX_BATCH_TOKENS}. Shorten "
            f"line {line} or use at most {MAX_BATCH_TOKENS // longest} lines of that length."
        )


def _fill_tokens(target: torch.Tensor, tokens: torch.Tensor) -> None:
    """target (L, ...) <- tokens (1, T, ...) repeated along T and cut to L (whole repetition when T divides L),
    without a stretched copy."""
    length, count = target.shape[0], tokens.shape[1]
    for start in range(0, length, count):
        end = min(length, start + count)
        target[start:end] = tokens[0, : end - start]


def _stacked(rows: list[torch.Tensor], length: int) -> torch.Tensor:
    """[(1, T_i, ...)] -> (N, length, ...), each row's tokens repeated to `length`, in one allocation."""
    dtype = rows[0].dtype
    for row in rows[1:]:
        dtype = torch.promote_types(dtype, row.dtype)
    out = torch.empty((len(rows), length, *rows[0].shape[2:]), dtype=dtype, device=rows[0].device)
    for index, row in enumerate(rows):
        _fill_tokens(out[index], row.to(out.device))
    return out


def stack_prompt_conditionings(entries: list[tuple[torch.Tensor, dict]], node_name: str) -> tuple[torch.Tensor, dict]:
    """[(cond (1, T_i, C), extras_i)] -> (cond (N, common_token_length(T), C), extras with batched pooled_output)."""
    if not entries:
        raise StyleAlignedError(f"{node_name}: no prompts to batch.")
    lengths = [cond.shape[1] for cond, _ in entries]
    check_token_budget(lengths, node_name)
    common_length, _ = common_token_length(lengths)
    extras: dict = {}
    for key in entries[0][1]:
        values = [entry_extras.get(key) for _, entry_extras in entries]
        if key == "pooled_output" and all(value is None for value in values):
            extras[key] = None  # T5-only encoders give the key without a pooled output
        elif key == "pooled_output":
            if any(value is None for value in values):
                raise StyleAlignedError(f"{node_name}: the text encoder gave a pooled output for some prompts only.")
            extras[key] = torch.cat(values, dim=0)
        elif all(_per_token(value, cond) for value, (cond, _) in zip(values, entries)):
            extras[key] = _stacked(values, common_length)
        elif all(_same(values[0], value) for value in values[1:]):
            extras[key] = values[0]
        else:
            raise StyleAlignedError(
                f"{node_name}: the text encoder's '{key}' output differs between prompts, so they cannot share one "
                f"conditioning batch."
            )
    return _stacked([cond for cond, _ in entries], common_length), extras


def _per_token(value, cond: torch.Tensor) -> bool:
    """A (1, tokens) tensor aligned with its prompt's (1, tokens, C) conditioning, e.g. an attention mask."""
    return torch.is_tensor(value) and value.dim() == 2 and value.shape[0] == 1 and value.shape[1] == cond.shape[1]


def _same(a, b) -> bool:
    if torch.is_tensor(a) or torch.is_tensor(b):
        return torch.is_tensor(a) and torch.is_tensor(b) and a.shape == b.shape and bool(torch.equal(a, b))
    return a == b


def prompt_of_each_image(prompt_count: int, image_count: int) -> list[int]:
    """Which prompt the host gives each latent: it repeats a smaller conditioning batch and cuts a larger
    one to the latent batch size (comfy.utils.repeat_to_batch_size)."""
    return [image % prompt_count for image in range(image_count)]
