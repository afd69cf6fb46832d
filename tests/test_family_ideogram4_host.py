"""Ideogram 4 (ComfyUI 0.33+): one forward of the patched tiny model equals an independent implementation
of the equations, written from the architecture (not from the pack).

The independent implementation replaces two host calls of comfy/ldm/ideogram4/model.py:
- `ck.rms_rope_split_half` (fused QK RMSNorm + RoPE): records the model's rotation table and lets the host
  normalise with the identity rotation, so attention sees q/k before RoPE;
- `optimized_attention_masked`: AdaIN of the targets' image-token q/k to their reference's (per head and
  channel over the image tokens), split-half RoPE written here (x cos + rotate_half(x) sin, pair i =
  channels (i, i + D/2)) with the model's angles, the reference's image keys at positions one image width
  further along the column axis (the model's angle plus width x the column frequency, float64) times
  lambda, its image values appended, and one attention over all rows whose bias is each row's own
  positional mask on its own keys, 0 on the appended keys of targets and -inf on those of references.
The model's table is itself checked against interleaved MRoPE computed here: ids (0, row, col) + 65536
for the image, channel pair j on the row axis when j = 1 (mod 3) and j < 3 * section[1], on the column
axis when j = 2 (mod 3) and j < 3 * section[2], else on the time axis.
"""

import math

import pytest
import torch

from host.dit_oracle import adain, max_diff
from host.sampling import sample, style_aligned
from host.tiny_dit_models import dit_noise, host_lacks
from host.split_half_oracle import grid_position_ids, interleaved_mrope_angles, rotate_half_rope, table_angles
from host.tiny_families.ideogram4 import IDEOGRAM4_CONFIG, PADDING_TOKENS, TEXT_TOKENS, ideogram4_conditioning

KIND = "ideogram4"
GRID = 8  # dit_noise: an 8x8 latent, one token per cell
IMAGE_TOKENS = GRID * GRID
IMAGE_OFFSET = 65536
KEY_SCALE = 1.1
HEAD_DIM = IDEOGRAM4_CONFIG["attention_head_dim"]


@pytest.fixture(scope="module")
def kind(pack):
    lacks = host_lacks(KIND)
    if lacks:
        pytest.skip(lacks)
    return KIND


@pytest.fixture(scope="module")
def host(kind):
    import comfy.ldm.ideogram4.model as host

    return host


def own_angles(ids):
    config = IDEOGRAM4_CONFIG
    return interleaved_mrope_angles(ids, HEAD_DIM, config["rope_theta"], config["mrope_section"])


def install_independent(patch, host, images_per_chunk, reference_index):
    import comfy.quant_ops

    state = {"calls": 0, "shared": 0}
    kitchen = comfy.quant_ops.ck
    fused = kitchen.rms_rope_split_half

    def record_table(xq, xk, freqs, *args, **kwargs):
        state["table"] = freqs  # (1, L, 1, D/2, 2, 2)
        identity = torch.zeros_like(freqs)
        identity[..., 0, 0] = 1
        identity[..., 1, 1] = 1
        return fused(xq, xk, identity, *args, **kwargs)

    def attention(q, k, v, heads, mask=None, skip_reshape=False, transformer_options={}, **kwargs):
        assert skip_reshape
        state["calls"] += 1
        rows, _, tokens, dim = q.shape
        text = tokens - IMAGE_TOKENS  # [text, image]
        image = slice(text, tokens)
        table = state["table"][0, :, 0].double()  # (L, D/2, 2, 2)
        angle = table_angles(table)
        own, omega, axis = own_angles(grid_position_ids(GRID, GRID, IMAGE_OFFSET))
        # The model's rotations are this MRoPE (fp32 angles near 65536 carry ~1e-3 rounding).
        torch.testing.assert_close(table[image, :, 0, 0], own.cos(), atol=5e-3, rtol=0)
        torch.testing.assert_close(table[image, :, 1, 0], own.sin(), atol=5e-3, rtol=0)
        if text:
            text_ids = torch.arange(text)[:, None].expand(text, 3)
            torch.testing.assert_close(table[:text, :, 1, 0], own_angles(text_ids)[0].sin(), atol=1e-5, rtol=0)
        shifted_angle = angle[image] + GRID * omega * (axis == 2)

        chunks = len(transformer_options["cond_or_uncond"])
        references = [chunk * images_per_chunk + reference_index for chunk in range(chunks)]
        reference_of = [references[row // images_per_chunk] for row in range(rows)]
        q, k, v = q.double().clone(), k.double().clone(), v.double()
        plain_q, plain_k = q.clone(), k.clone()
        for row in range(rows):
            if row != reference_of[row]:
                q[row, :, image] = adain(plain_q[row, :, image], plain_q[reference_of[row], :, image])
                k[row, :, image] = adain(plain_k[row, :, image], plain_k[reference_of[row], :, image])
        q_rot, k_rot = rotate_half_rope(q, angle), rotate_half_rope(k, angle)
        appended = rotate_half_rope(plain_k[reference_of][:, :, image], shifted_angle) * KEY_SCALE
        keys = torch.cat([k_rot, appended], dim=2)
        values = torch.cat([v, v[reference_of][:, :, image]], dim=2)
        bias = torch.zeros(rows, 1, tokens, tokens + IMAGE_TOKENS, dtype=torch.float64)
        if mask is not None:
            bias[..., :tokens] = mask.double().expand(rows, 1, tokens, tokens)
        for reference in references:
            bias[reference, ..., tokens:] = -math.inf
        state["shared"] += 1
        out = torch.nn.functional.scaled_dot_product_attention(q_rot, keys, values, attn_mask=bias)
        return out.to(q.dtype).float().transpose(1, 2).reshape(rows, tokens, heads * dim)

    patch.setattr(kitchen, "rms_rope_split_half", record_table)
    patch.setattr(host, "optimized_attention_masked", attention)
    return state


@pytest.mark.parametrize("text", ["padded prompt", "image only"])
@pytest.mark.parametrize("reference_index", [0, 1])
def test_one_forward_matches_independent_implementation(host, model, text, reference_index, monkeypatch):
    """One Euler step at cfg 3: one model call with both chunks. "padded prompt": [text, image] with the
    model's positional mask (two padding tokens); "image only": no text context, the image alone."""
    padding = PADDING_TOKENS if text == "padded prompt" else None
    positive, negative = ideogram4_conditioning(seed=1, padding=padding), ideogram4_conditioning(seed=2, padding=padding)
    noise = dit_noise(KIND, 3, seed=3)
    patched = sample(style_aligned(model, reference_index=reference_index), noise, positive, negative, cfg=3.0, steps=1)
    plain = sample(model, noise, positive, negative, cfg=3.0, steps=1)
    seen = install_independent(monkeypatch, host, 3, reference_index)
    independent = sample(model, noise, positive, negative, cfg=3.0, steps=1)
    monkeypatch.undo()
    assert seen["shared"] == IDEOGRAM4_CONFIG["num_layers"]
    assert max_diff(patched[reference_index], plain[reference_index]) < 1e-5
    targets = [i for i in range(3) if i != reference_index]
    assert max_diff(patched[targets], plain[targets]) > 1e-2  # not a comparison of two unpatched runs
    assert max_diff(patched, independent) < 1e-4


def test_padding_mask_reaches_attention(host, model, monkeypatch):
    """The tiny conditioning's padding gives the model's (B, 1, L, L) positional mask in every call: the
    invariants and the oracle above run through the masked path."""
    masks = []
    original = host.optimized_attention_masked

    def record(q, k, v, heads, mask=None, *args, **kwargs):
        masks.append(mask)
        return original(q, k, v, heads, mask, *args, **kwargs)

    monkeypatch.setattr(host, "optimized_attention_masked", record)
    positive, negative = ideogram4_conditioning(seed=1), ideogram4_conditioning(seed=2)
    sample(model, dit_noise(KIND, 2, seed=3), positive, negative, cfg=3.0, steps=1)
    tokens = TEXT_TOKENS + IMAGE_TOKENS
    assert masks and all(m is not None and tuple(m.shape) == (4, 1, tokens, tokens) for m in masks)
