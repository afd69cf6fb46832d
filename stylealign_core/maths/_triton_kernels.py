"""Triton kernels of the fused shared-attention path (imported lazily, only where Triton is used).

Two kernels per self-attention layer, over a (rows, L, C) input x whose rows are `chunks` groups of
`images` images, the reference being slot `ref_index` of each group:

- `_stats_kernel`: per (row, channel) mean and M2 (sum of squared deviations) over one split of the
  tokens, in float32: Welford's update in every register lane, the lanes merged once at the end
  (parallel-variance formula), so the variance has no E[x^2] - E[x]^2 cancellation.
- `_apply_kernel`: merges the splits (same order in every program, so every tile of a row uses the same
  scale and shift), turns the statistics into AdaIN's affine, std_ref / std and mean_ref - mean * scale,
  exactly as the torch path does, and writes every output buffer the options need in one pass over x:
      A_PLAIN  (rows, L, C)   AdaIN(x)                  (queries; keys/values when nothing is shared)
      A_SHARED (rows, 2L, C)  [AdaIN(x) ; x_ref]        (keys, or values when they are normalised)
      X_SHARED (rows, 2L, C)  [x ; x_ref]               (values, or keys when they are not normalised)
  Reference rows skip the affine: they are copied bit for bit.

TRITON_INTERPRET=1 (read when this module is imported) runs the same kernels on CPU tensors.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _stats_kernel(
    x_ptr,
    mean_part_ptr,
    m2_part_ptr,
    L,
    C,
    splits,
    split_len,
    stride_row,
    stride_tok,
    stride_ch,
    BLOCK_L: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    split = tl.program_id(0)
    cblock = tl.program_id(1)
    row = tl.program_id(2)
    cols = cblock * BLOCK_C + tl.arange(0, BLOCK_C)
    col_ok = cols < C
    base = x_ptr + row.to(tl.int64) * stride_row
    start = split * split_len
    stop = tl.minimum(start + split_len, L)

    # Welford per register lane (token lane x channel): no cross-thread reduction inside the loop,
    # one merge of the lanes at the end.
    lane_mean = tl.zeros([BLOCK_L, BLOCK_C], dtype=tl.float32)
    lane_m2 = tl.zeros([BLOCK_L, BLOCK_C], dtype=tl.float32)
    lane_n = tl.zeros([BLOCK_L], dtype=tl.float32)
    for tile_start in range(start, stop, BLOCK_L):
        toks = tile_start + tl.arange(0, BLOCK_L)
        tok_ok = toks < stop
        mask = tok_ok[:, None] & col_ok[None, :]
        offsets = toks[:, None].to(tl.int64) * stride_tok + cols[None, :] * stride_ch
        x = tl.load(base + offsets, mask=mask, other=0.0).to(tl.float32)
        lane_n = lane_n + tok_ok.to(tl.float32)
        inverse = 1.0 / tl.maximum(lane_n, 1.0)
        delta = x - lane_mean
        lane_mean = lane_mean + tl.where(tok_ok[:, None], delta * inverse[:, None], 0.0)
        lane_m2 = lane_m2 + tl.where(tok_ok[:, None], delta * (x - lane_mean), 0.0)

    # Merge the lanes: mean = sum(n_l mean_l) / n, M2 = sum(M2_l + n_l (mean_l - mean)^2), a sum of
    # non-negative terms (lanes that saw no token have n_l = 0 and add nothing).
    counts = lane_n[:, None]
    mean = tl.sum(lane_mean * counts, axis=0) / tl.sum(lane_n, axis=0)
    spread = lane_mean - mean[None, :]
    m2 = tl.sum(lane_m2 + counts * spread * spread, axis=0)
    out = (row.to(tl.int64) * splits + split) * C + cols
    tl.store(mean_part_ptr + out, mean, mask=col_ok)
    tl.store(m2_part_ptr + out, m2, mask=col_ok)


@triton.jit
def _merged_stats(mean_part_ptr, m2_part_ptr, row, cols, col_ok, L, C, splits, split_len, BLOCK_C: tl.constexpr):
    """Mean and population variance of one row, merging its splits in a fixed order."""
    count = tl.zeros([BLOCK_C], dtype=tl.float32)
    mean = tl.zeros([BLOCK_C], dtype=tl.float32)
    m2 = tl.zeros([BLOCK_C], dtype=tl.float32)
    for split in range(0, splits):
        at = (row.to(tl.int64) * splits + split) * C + cols
        part_mean = tl.load(mean_part_ptr + at, mask=col_ok, other=0.0)
        part_m2 = tl.load(m2_part_ptr + at, mask=col_ok, other=0.0)
        n_part = tl.minimum(split_len, L - split * split_len).to(tl.float32)
        new_count = count + n_part
        delta = part_mean - mean
        mean = mean + delta * (n_part / new_count)
        m2 = m2 + part_m2 + delta * delta * (count * n_part / new_count)
        count = new_count
    return mean, m2 / L


@triton.jit
def _apply_kernel(
    x_ptr,
    mean_part_ptr,
    m2_part_ptr,
    a_plain_ptr,
    a_shared_ptr,
    x_shared_ptr,
    L,
    C,
    images,
    ref_index,
    splits,
    split_len,
    tiles_per_program,
    eps,
    stride_row,
    stride_tok,
    stride_ch,
    BLOCK_L: tl.constexpr,
    BLOCK_C: tl.constexpr,
    NEED_STATS: tl.constexpr,
    A_PLAIN: tl.constexpr,
    A_SHARED: tl.constexpr,
    X_SHARED: tl.constexpr,
    NEED_REF: tl.constexpr,
):
    program = tl.program_id(0)
    cblock = tl.program_id(1)
    row = tl.program_id(2)
    ref_row = (row // images) * images + ref_index
    is_target = row != ref_row
    cols = cblock * BLOCK_C + tl.arange(0, BLOCK_C)
    col_ok = cols < C
    row64 = row.to(tl.int64)
    x_base = x_ptr + row64 * stride_row
    ref_base = x_ptr + ref_row.to(tl.int64) * stride_row
    plain_base = row64 * L * C
    shared_base = row64 * (2 * L) * C

    scale = tl.full([BLOCK_C], 1.0, dtype=tl.float32)
    shift = tl.zeros([BLOCK_C], dtype=tl.float32)
    if NEED_STATS:
        if is_target:
            mean, var = _merged_stats(mean_part_ptr, m2_part_ptr, row, cols, col_ok, L, C, splits, split_len, BLOCK_C)
            ref_mean, ref_var = _merged_stats(
                mean_part_ptr, m2_part_ptr, ref_row, cols, col_ok, L, C, splits, split_len, BLOCK_C
            )
            std = tl.sqrt_rn(var + eps)
            ref_std = tl.sqrt_rn(ref_var + eps)
            scale = tl.div_rn(ref_std, std)
            shift = ref_mean - mean * scale

    first_tile = program * tiles_per_program
    for tile in range(first_tile, first_tile + tiles_per_program):
        toks = tile * BLOCK_L + tl.arange(0, BLOCK_L)
        mask = (toks < L)[:, None] & col_ok[None, :]
        src = toks[:, None].to(tl.int64) * stride_tok + cols[None, :] * stride_ch
        dst = toks[:, None].to(tl.int64) * C + cols[None, :]
        x = tl.load(x_base + src, mask=mask, other=0.0)
        if NEED_STATS:
            if is_target:
                y = (x.to(tl.float32) * scale[None, :] + shift[None, :]).to(x.dtype)
            else:
                y = x
            if A_PLAIN:
                tl.store(a_plain_ptr + plain_base + dst, y, mask=mask)
            if A_SHARED:
                tl.store(a_shared_ptr + shared_base + dst, y, mask=mask)
        if X_SHARED:
            tl.store(x_shared_ptr + shared_base + dst, x, mask=mask)
        if NEED_REF:
            ref = tl.load(ref_base + src, mask=mask, other=0.0)
            if A_SHARED:
                tl.store(a_shared_ptr + shared_base + L * C + dst, ref, mask=mask)
            if X_SHARED:
                tl.store(x_shared_ptr + shared_base + L * C + dst, ref, mask=mask)
