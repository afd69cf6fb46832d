"""The pre-RoPE AdaIN hook on grouped-query attention (Krea 2: k and v have fewer heads than q, repeated by
the model after the hook): AdaIN on the K/V heads equals AdaIN on their repeated copies, and the targets'
image keys get the reference's per-(head, channel) statistics. Core only, no host."""

from types import SimpleNamespace

import torch

from stylealign_core.batch_layout import BatchLayout
from stylealign_core.share_flags import ShareFlags
from stylealign_core.transformer import CALL_LAYOUT_KEY, CallLayout, TransformerSharing
from stylealign_core.transformer.family import TaggedBlocksFamily
from stylealign_core.transformer.pre_rope_patch import PreRopeAdaIN

TEXT, IMAGE, EXTRA, DIM, HEADS, KV_HEADS = 3, 8, 2, 4, 4, 2
EPS = 1e-5


class SingleBlocks(TaggedBlocksFamily):
    groups = ("single",)


def hook_and_options():
    sharing = TransformerSharing(
        shared_blocks=frozenset({("single", 0)}),
        flags=ShareFlags(adain_queries=True, adain_keys=True, adain_values=False, share=True),
        key_scale=1.1, position_shift=True,
    )
    layout = CallLayout(batch=BatchLayout(chunks=2, images_per_chunk=3, reference_index=1), image_start=TEXT, image_tokens=IMAGE)
    layout.owner = SimpleNamespace(sharing=sharing)
    return PreRopeAdaIN(SingleBlocks(), sharing), {"block_type": "single", "block_index": 0, CALL_LAYOUT_KEY: layout}


def tensors(heads):
    generator = torch.Generator().manual_seed(3)
    return torch.randn(6, heads, TEXT + IMAGE + EXTRA, DIM, generator=generator) * 2 + 0.5


def test_grouped_kv_heads_are_normalised_like_their_repeated_copies():
    q = tensors(HEADS)
    k, v = tensors(KV_HEADS), tensors(KV_HEADS) + 1
    hook, options = hook_and_options()
    grouped = hook(q.clone(), k.clone(), v.clone(), pe=None, attn_mask=None, extra_options=options)
    hook, options = hook_and_options()
    repeated = hook(q.clone(), k.repeat_interleave(2, dim=1), v.repeat_interleave(2, dim=1), pe=None, attn_mask=None, extra_options=options)
    assert grouped["k"].shape == k.shape
    torch.testing.assert_close(grouped["k"].repeat_interleave(2, dim=1), repeated["k"], atol=1e-6, rtol=0)
    torch.testing.assert_close(grouped["q"], repeated["q"], atol=1e-6, rtol=0)

    image = slice(TEXT, TEXT + IMAGE)
    for chunk in range(2):
        reference = chunk * 3 + 1
        ref_mean = k[reference, :, image].double().mean(-2)
        ref_std = (k[reference, :, image].double().var(-2, unbiased=False) + EPS).sqrt()
        for target in (chunk * 3, chunk * 3 + 2):
            keys = grouped["k"][target, :, image].double()
            target_std = (k[target, :, image].double().var(-2, unbiased=False) + EPS).sqrt()
            torch.testing.assert_close(keys.mean(-2), ref_mean, atol=1e-5, rtol=0)
            # AdaIN: (x - m_t) / sqrt(v_t + eps) * sqrt(v_r + eps) + m_r per (head, channel) over the image tokens.
            expected = (k[target, :, image].double() - k[target, :, image].double().mean(-2, keepdim=True)) / target_std[:, None] * ref_std[:, None] + ref_mean[:, None]
            torch.testing.assert_close(keys, expected, atol=1e-5, rtol=0)
        # The reference and every token outside the image stay as they were.
        assert torch.equal(grouped["k"][reference], k[reference])
    assert torch.equal(grouped["k"][:, :, :TEXT], k[:, :, :TEXT]) and torch.equal(grouped["k"][:, :, TEXT + IMAGE:], k[:, :, TEXT + IMAGE:])
