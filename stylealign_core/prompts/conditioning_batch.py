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
The encoder's other outputs (the conditioning dict) are batched by their shape, whatever the family:
- one row per prompt (a tensor whose first axis is 1: a pooled vector (1, P), per-layer features such as
  (1, layers, T, C), token ids (1, T)) -> the rows stacked along that axis. Where the prompts' rows differ
  in one other axis, that is a token axis: it is brought to a common length the way the conditioning is (the
  conditioning's own length when it runs along the conditioning's tokens, e.g. an attention mask (1, T_i);
  its own whole or cyclic repetition otherwise, e.g. a second encoder's tokens). Masks must run along the
  conditioning's tokens. Token ids (integer tensors that are not masks) cannot be lengthened without changing
  the prompt: prompts whose ids differ in length are refused, naming the key and the counts.
- an output without a row axis (one prompt's 1-D token list, a number) must be the same for every prompt;
- an output some prompts give and others do not is refused (an attention mask is the exception: the hosts'
  encoders drop an all-ones mask, so a missing one is all ones).
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
    """[(cond (1, T_i, C), extras_i)] -> (cond (N, common_token_length(T), C), extras batched by shape)."""
    if not entries:
        raise StyleAlignedError(f"{node_name}: no prompts to batch.")
    lengths = [cond.shape[1] for cond, _ in entries]
    check_token_budget(lengths, node_name)
    common_length, _ = common_token_length(lengths)
    keys = list(dict.fromkeys(key for _, entry_extras in entries for key in entry_extras))
    extras = {key: _batched_output(key, [entry_extras.get(key, _MISSING) for _, entry_extras in entries], lengths, common_length, node_name)
              for key in keys}
    return _stacked([cond for cond, _ in entries], common_length), extras


_MISSING = object()


def _is_mask(key: str) -> bool:
    return "mask" in key


def _lines(indices) -> str:
    return ", ".join(str(index + 1) for index in indices)


def _batched_output(key: str, values: list, lengths: list[int], common_length: int, node_name: str):
    """One encoder output of every prompt as one batched value (see the module docstring)."""
    absent = [i for i, value in enumerate(values) if value is _MISSING or value is None]
    if len(absent) == len(values):
        return None
    if absent:
        present = values[next(i for i in range(len(values)) if i not in absent)]
        if _is_mask(key) and torch.is_tensor(present) and present.dim() == 2:  # dropped as all ones by the encoder
            values = [torch.ones((1, lengths[i]), dtype=present.dtype) if i in absent else value for i, value in enumerate(values)]
        elif key == "pooled_output":
            raise StyleAlignedError(f"{node_name}: the text encoder gave a pooled output for some prompts only.")
        else:
            raise StyleAlignedError(
                f"{node_name}: the text encoder gives '{key}' for line(s) {_lines(i for i in range(len(values)) if i not in absent)} "
                f"but not for line(s) {_lines(absent)} (an output only some prompts produce, e.g. for quoted text), so they "
                f"cannot share one conditioning batch. Write the lines alike in this respect, or use one prompt for the set."
            )
    if not all(torch.is_tensor(value) for value in values):
        if all(_same(values[0], value) for value in values[1:]):
            return values[0]
        raise _differs(key, node_name)
    if not all(value.dim() >= 2 and value.shape[0] == 1 for value in values):  # no row axis: one prompt's value
        if all(_same(values[0], value) for value in values[1:]):
            return values[0]
        raise _differs(key, node_name, " (it has no batch axis: the model reads one per conditioning)")
    shapes = [tuple(value.shape) for value in values]
    differing = [axis for axis in range(1, len(shapes[0])) if len({shape[axis] for shape in shapes if len(shape) == len(shapes[0])}) > 1]
    if any(len(shape) != len(shapes[0]) for shape in shapes) or len(differing) > 1:
        raise _differs(key, node_name)
    if not differing:
        return torch.cat([value.to(values[0].device) for value in values], dim=0)
    axis = differing[0]
    axis_lengths = [shape[axis] for shape in shapes]
    along_tokens = axis == 1 and axis_lengths == lengths
    if _is_mask(key) and not along_tokens:
        raise _differs(key, node_name, " (a mask that does not run along the prompts' tokens)")
    if not _is_mask(key) and not (values[0].is_floating_point() or values[0].is_complex()):
        raise StyleAlignedError(
            f"{node_name}: the prompts give {'/'.join(str(n) for n in axis_lengths)} tokens in the text encoder's '{key}' "
            f"output (token ids), which cannot be lengthened without changing the prompt, so they cannot share one "
            f"conditioning batch. Make the lines tokenize to the same length (add or remove words), or use one prompt "
            f"for the set."
        )
    length = common_length if along_tokens else common_token_length(axis_lengths)[0]
    return _stacked([value.movedim(axis, 1) for value in values], length).movedim(1, axis).contiguous()


def _differs(key: str, node_name: str, why: str = "") -> StyleAlignedError:
    return StyleAlignedError(
        f"{node_name}: the text encoder's '{key}' output differs between prompts{why}, so they cannot share one "
        f"conditioning batch."
    )


def _same(a, b) -> bool:
    if torch.is_tensor(a) or torch.is_tensor(b):
        return torch.is_tensor(a) and torch.is_tensor(b) and a.shape == b.shape and bool(torch.equal(a, b))
    return a == b


def prompt_of_each_image(prompt_count: int, image_count: int) -> list[int]:
    """Which prompt the host gives each latent: it repeats a smaller conditioning batch and cuts a larger
    one to the latent batch size (comfy.utils.repeat_to_batch_size)."""
    return [image % prompt_count for image in range(image_count)]
