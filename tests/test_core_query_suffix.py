"""The override on calls whose queries are a suffix of their keys (CallLayout.query_start, HiDream-O1's
generation pass) and whose K/V have fewer heads than Q (grouped-query attention, enable_gqa)."""

import torch

from stylealign_core.batch_layout import BatchLayout
from stylealign_core.share_flags import ShareFlags
from stylealign_core.transformer import CALL_LAYOUT_KEY, CallLayout, SharedAttentionOverride, TransformerSharing
from stylealign_core.transformer.families.flux import FluxFamily

Q_HEADS, KV_HEADS, DIM, TEXT, IMAGE, EXTRA = 4, 2, 8, 5, 6, 2
TOKENS = TEXT + IMAGE + EXTRA


def make_override():
    sharing = TransformerSharing(
        shared_blocks=frozenset({("single", 0)}), flags=ShareFlags(True, True, False, True), key_scale=1.1, position_shift=False)
    return SharedAttentionOverride(FluxFamily(), sharing)


def layout(query_start):
    return CallLayout(batch=BatchLayout(chunks=2, images_per_chunk=3, reference_index=1), image_start=TEXT,
                      image_tokens=IMAGE, query_start=query_start)


def run(override, q, k, v, call_layout, seen):
    def backend(q, k, v, heads, skip_reshape=False, skip_output_reshape=False, transformer_options=None, **kwargs):
        seen.append(kwargs)
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, **kwargs)

    options = {"block_type": "single", "block_index": 0, CALL_LAYOUT_KEY: call_layout}
    return override(backend, q, k, v, Q_HEADS, skip_reshape=True, skip_output_reshape=True, enable_gqa=True,
                    transformer_options=options)


def test_query_suffix_with_grouped_heads_equals_the_full_call_sliced():
    """Attention is per query: the suffix call equals the full-length call's rows from query_start on, with
    the queries' image tokens AdaIN-normalised at their offset; enable_gqa reaches both backend calls."""
    generator = torch.Generator().manual_seed(0)
    q = torch.randn(6, Q_HEADS, TOKENS, DIM, generator=generator)
    k, v = (torch.randn(6, KV_HEADS, TOKENS, DIM, generator=generator) for _ in range(2))
    seen = []
    full_layout = layout(0)
    full = run(make_override(), q, k, v, full_layout, seen)
    start = TEXT - 1
    suffix_layout = layout(start)
    suffix = run(make_override(), q[:, :, start:], k, v, suffix_layout, seen)
    assert full_layout.shared_calls == 1 and suffix_layout.shared_calls == 1
    assert suffix.shape == (6, Q_HEADS, TOKENS - start, DIM)
    torch.testing.assert_close(suffix, full[:, :, start:], atol=1e-6, rtol=0)
    assert len(seen) == 4 and all(kwargs == {"enable_gqa": True} for kwargs in seen)
    # The targets' queries were normalised (sharing without AdaIN on q gives another result).
    plain = make_override()
    plain.sharing = TransformerSharing(plain.sharing.shared_blocks, ShareFlags(False, True, False, True), 1.1, False)
    other = run(plain, q[:, :, start:], k, v, layout(start), [])
    assert (other - suffix).abs().max() > 1e-3


def test_query_suffix_of_another_length_passes_through():
    """A call whose queries do not end where the keys do at the layout's offset is left to the backend."""
    generator = torch.Generator().manual_seed(1)
    q = torch.randn(6, Q_HEADS, TOKENS - 2, DIM, generator=generator)
    k, v = (torch.randn(6, KV_HEADS, TOKENS, DIM, generator=generator) for _ in range(2))
    call_layout = layout(TEXT - 1)  # expects TOKENS - TEXT + 1 queries
    out = run(make_override(), q, k, v, call_layout, [])
    assert call_layout.shared_calls == 0 and call_layout.pass_causes == {"its rows or token count"}
    torch.testing.assert_close(out, torch.nn.functional.scaled_dot_product_attention(q, k, v, enable_gqa=True))
