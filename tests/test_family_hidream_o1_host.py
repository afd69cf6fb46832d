"""HiDream-O1 (ComfyUI 0.33+): the patched tiny model equals an independent implementation of the
equations, written from the architecture (not from the pack).

The independent implementation replaces two host pieces:
- the decoder's `apply_rope` (comfy/text_encoders/llama.py): records the model's rotation table and leaves
  q/k as they are, so attention sees them before RoPE;
- the model's two-pass attention (make_two_pass_attention in comfy/ldm/hidream_o1/model.py) by one
  attention over all tokens written here: split-half RoPE (x cos + rotate_half(x) sin) with the model's
  angles, grouped K/V heads repeated to the query heads, the prompt prefix [0, ar_len) causal and the
  generation part [ar_len, L) on all keys; for the generation queries of targets, AdaIN of the image
  tokens' q/k to their reference's (per head and channel over the image tokens, before RoPE), and the
  reference's image keys appended at positions one image width further along the column axis (the
  model's angle plus width x the column frequency, float64) times lambda, with its image values; the
  reference rows never see appended keys. It also clears the model's prompt K/V cache before every call,
  so every call runs the full sequence, while the patched run uses the cache from its second step on (the
  same equations with the prompt's K/V reused).
The model's table is checked against interleaved MRoPE computed here: image ids (0, row, col) + 4096 (the
model's fixed point for the generated image), text ids 0, 1, 2, ...
"""

import math

import pytest
import torch

from host.dit_oracle import adain, max_diff
from host.sampling import sample, style_aligned
from host.split_half_oracle import grid_position_ids, interleaved_mrope_angles, rotate_half_rope
from host.tiny_dit_models import dit_noise, host_lacks
from host.tiny_families.hidream_o1 import HIDREAM_O1_CONFIG, IMAGE_SIZE, hidream_o1_conditioning, prompt_ids

KIND = "hidream_o1"
GRID = IMAGE_SIZE // 32
IMAGE_TOKENS = GRID * GRID
FIX_POINT = 4096
KEY_SCALE = 1.1
TEXT = HIDREAM_O1_CONFIG["text_config_overrides"]


@pytest.fixture(scope="module")
def kind(pack):
    lacks = host_lacks(KIND)
    if lacks:
        pytest.skip(lacks)
    return KIND


@pytest.fixture(scope="module")
def host(kind):
    import comfy.ldm.hidream_o1.model as host

    return host


def install_independent(patch, host, dm, images_per_chunk, reference_index, extra_tokens=0):
    """extra_tokens: edit-image patches after the generated image ([text, image, edit patches])."""
    import comfy.text_encoders.llama as llama

    state = {"shared": 0}

    def record_table(xq, xk, freqs_cis):
        state["freqs"] = freqs_cis
        return xq, xk

    def make_two_pass_attention(ar_len, transformer_options=None):
        dm._kv_cache_entries = []  # read by the model right after this: every call runs the full sequence

        def attention(q, k, v, heads, enable_gqa=False, **kwargs):
            rows, q_heads, tokens, dim = q.shape
            assert k.shape[2] == tokens and enable_gqa == (k.shape[1] != q_heads)
            cos, sin = state["freqs"][0][0], state["freqs"][1][0]  # (L, D), (L, D/2)
            angle = torch.atan2(sin.double(), cos[:, : dim // 2].double())
            image_start = tokens - IMAGE_TOKENS - extra_tokens
            image = slice(image_start, image_start + IMAGE_TOKENS)
            own, omega, axis = interleaved_mrope_angles(
                grid_position_ids(GRID, GRID, FIX_POINT), dim, TEXT["rope_theta"], TEXT["rope_dims"])
            torch.testing.assert_close(angle[image].cos(), own.cos(), atol=1e-3, rtol=0)
            torch.testing.assert_close(angle[image].sin(), own.sin(), atol=1e-3, rtol=0)
            if not extra_tokens:  # text to image: text ids 0, 1, 2, ... (an edit's ViT tokens have grid ids)
                text_ids = torch.arange(image_start)[:, None].expand(image_start, 3)
                text_angles = interleaved_mrope_angles(text_ids, dim, TEXT["rope_theta"], TEXT["rope_dims"])[0]
                torch.testing.assert_close(angle[:image_start].sin(), text_angles.sin(), atol=1e-5, rtol=0)
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
            group = q_heads // k.shape[1]
            keys = torch.cat([k_rot, appended], dim=2).repeat_interleave(group, dim=1)
            values = torch.cat([v, v[reference_of][:, :, image]], dim=2).repeat_interleave(group, dim=1)
            bias = torch.zeros(rows, 1, tokens, tokens + IMAGE_TOKENS, dtype=torch.float64)
            causal = torch.ones(ar_len, ar_len, dtype=torch.bool).tril()
            bias[:, :, :ar_len, :ar_len] = torch.zeros(ar_len, ar_len, dtype=torch.float64).masked_fill(~causal, -math.inf)
            bias[:, :, :ar_len, ar_len:] = -math.inf  # the prompt prefix: causal, never the image or the reference
            for reference in references:
                bias[reference, :, :, tokens:] = -math.inf
            state["shared"] += 1
            out = torch.nn.functional.scaled_dot_product_attention(q_rot, keys, values, attn_mask=bias)
            return out.float().transpose(1, 2).reshape(rows, tokens, q_heads * dim)

        return attention

    patch.setattr(llama, "apply_rope", record_table)
    patch.setattr(host, "make_two_pass_attention", make_two_pass_attention)
    return state


def with_edit_image(conditioning: list, image: torch.Tensor) -> list:
    return [[cond, dict(extras, reference_latents=[image])] for cond, extras in conditioning]


@pytest.mark.parametrize("mode,reference_index", [("text to image", 0), ("text to image", 2), ("edit", 1)])
def test_forward_matches_independent_implementation(host, model, mode, reference_index, monkeypatch):
    """Two Euler steps at cfg 3 (one model call per step with both chunks): the patched run's first call runs
    the full sequence, its second reuses the prompt's cached K/V (queries [ar_len, L) only); the independent
    implementation runs every call in full. "edit": one edit image (its ViT tokens spliced into the text,
    its 32-pixel patches after the generated image): neither normalised nor shared."""
    dm = model.model.diffusion_model
    positive, negative = hidream_o1_conditioning(seed=1), hidream_o1_conditioning(seed=2)
    extra_tokens = 0
    if mode == "edit":
        image = torch.rand(1, IMAGE_SIZE, IMAGE_SIZE, 3, generator=torch.Generator().manual_seed(7))
        positive, negative = with_edit_image(positive, image), with_edit_image(negative, image)
        extra_tokens = IMAGE_TOKENS  # the edit image is resized to the target's size: as many patches
    noise = dit_noise(KIND, 3, seed=3)
    dm.clear_kv_cache()
    patched = sample(style_aligned(model, reference_index=reference_index), noise, positive, negative, cfg=3.0, steps=2)
    assert dm._kv_cache_entries, "the patched run used the model's prompt K/V cache"
    dm.clear_kv_cache()
    plain = sample(model, noise, positive, negative, cfg=3.0, steps=2)
    seen = install_independent(monkeypatch, host, dm, 3, reference_index, extra_tokens)
    independent = sample(model, noise, positive, negative, cfg=3.0, steps=2)
    monkeypatch.undo()
    dm.clear_kv_cache()
    assert seen["shared"] == 2 * TEXT["num_hidden_layers"]
    assert max_diff(patched[reference_index], plain[reference_index]) < 1e-5
    targets = [i for i in range(3) if i != reference_index]
    assert max_diff(patched[targets], plain[targets]) > 1e-2  # not a comparison of two unpatched runs
    assert max_diff(patched, independent) < 1e-4


def test_one_prompt_per_image_batch_keeps_the_reference(host, model):
    """Per-row token ids (one prompt per image, equal token counts): the reference row comes out as when it is
    sampled with the same rows unpatched, and each row's prompt is its own: changing row 2's prompt changes
    row 2 only (no leakage between targets, the reference untouched)."""
    words = torch.randint(1000, 100000, (3, 6), generator=torch.Generator().manual_seed(5))
    ids = prompt_ids(words)
    positive = [[ids.float().unsqueeze(-1), {"text_input_ids": ids}]]
    negative = hidream_o1_conditioning(seed=2)
    noise = dit_noise(KIND, 3, seed=4)
    patched = style_aligned(model)
    aligned = sample(patched, noise, positive, negative, cfg=3.0, steps=2)
    plain = sample(model, noise, positive, negative, cfg=3.0, steps=2)
    assert max_diff(aligned[0], plain[0]) < 1e-5 and max_diff(aligned[1:], plain[1:]) > 1e-2
    changed = ids.clone()
    changed[2, 4] = 4242
    second = sample(patched, noise, [[changed.float().unsqueeze(-1), {"text_input_ids": changed}]], negative, cfg=3.0, steps=2)
    assert max_diff(second[2], aligned[2]) > 1e-3
    assert max_diff(second[:2], aligned[:2]) < 1e-5
