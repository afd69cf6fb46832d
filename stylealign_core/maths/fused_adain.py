"""The shared-attention maths for the common case of one input tensor, with a fused Triton path on CUDA.

In self-attention ComfyUI hands the attn1 patch the same tensor x as the q, k and v inputs. For that case
`fused_share_reference` produces every output with at most three buffers:
    A_PLAIN  = AdaIN(x)                  (rows, L, C)
    A_SHARED = [AdaIN(x) ; x_ref]        (rows, 2L, C)
    X_SHARED = [x ; x_ref]               (rows, 2L, C)
q, k and v are each x itself or one of these, so a buffer two of them need is made once (k and v are the
same tensor when both or neither are normalised). Statistics are taken once, in float32, and AdaIN is one
affine pass, x * scale + shift, in float32; reference rows come out bit-identical to x.

On CUDA (float16, bfloat16, float32) two Triton kernels do the work (see _triton_kernels.py): one for the
per-(image, channel) statistics, one that applies the affine and writes all buffers in a single pass over
x. Everywhere else, or when Triton is missing or fails, the torch path below computes the same values.
STYLEALIGNED_TRITON=0 turns the Triton path off.

A failure is never silent and never swallows an out-of-memory error (torch.cuda.OutOfMemoryError is raised
as is: falling back would only allocate again). Every other failure logs one WARNING per cause and:
  - a failure that will recur on every call (Triton cannot be imported; Triton's own compiler or resource
    errors, raised from the `triton` package, e.g. CompilationError or OutOfResources) switches the fused
    path off for the process: retrying would fail the same way at every layer of every step;
  - any other failure (a launch error, a bad shape the planner did not foresee) falls back for that call
    only; the next call tries the kernels again.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from typing import Optional, Protocol

import torch

from .adain import VARIANCE_EPS, adain_affine, apply_affine, channel_stats, needs_grad

log = logging.getLogger(__name__)

TRITON_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
# Smallest tile side: tiny maps (1 token, a few channels) are masked rather than given 1-wide tiles.
MIN_BLOCK = 16


# What the maths reads of its arguments; the core's BatchLayout (batch_layout.py) and ShareFlags
# (share_flags.py) are these. Declared here so maths/ imports nothing above it.
class BatchLayout(Protocol):
    """Rows = chunks x images_per_chunk; the reference is slot reference_index of every chunk."""

    chunks: int
    images_per_chunk: int
    reference_index: int


class ShareFlags(Protocol):
    """Which of q, k, v are normalised, whether the reference's tokens are appended, which buffers that needs."""

    adain_queries: bool
    adain_keys: bool
    adain_values: bool
    share: bool
    any_adain: bool
    buffers: tuple[bool, bool, bool]  # (A_PLAIN, A_SHARED, X_SHARED)


def _pick(x, flags: ShareFlags, a_plain, a_shared, x_shared):
    def output(adain: bool, shared: bool):
        if shared:
            return a_shared if adain else x_shared
        return a_plain if adain else x

    q = a_plain if flags.adain_queries else x
    return q, output(flags.adain_keys, flags.share), output(flags.adain_values, flags.share)


# ----------------------------------------------------------------------------------------------- torch


def torch_share_reference(x: torch.Tensor, layout: BatchLayout, flags: ShareFlags):
    """The exact eager path (CPU, MPS, or CUDA without Triton)."""
    if not flags.any_adain and not flags.share:
        return x, x, x
    want_plain, want_a_shared, want_x_shared = flags.buffers
    grouped = x.reshape(layout.chunks, layout.images_per_chunk, x.shape[-2], x.shape[-1])
    r = layout.reference_index
    reference = grouped[:, r : r + 1]
    a_plain = a_shared = x_shared = None
    if flags.any_adain:
        mean, std = channel_stats(grouped)
        scale, shift = adain_affine(mean, std, mean[:, r : r + 1], std[:, r : r + 1])
        # One pass: float32 arithmetic, rounded once into the input's dtype (no float32 copy of the result).
        normalised = apply_affine(grouped, scale, shift)
        if want_plain:
            a_plain = normalised.view(x.shape)
        if want_a_shared:
            # The reference's own tokens are appended: its normalised rows equal them bit for bit.
            a_shared = torch.cat([normalised, reference.expand_as(grouped)], dim=2).view(x.shape[0], -1, x.shape[-1])
    if want_x_shared:
        x_shared = torch.cat([grouped, reference.expand_as(grouped)], dim=2).view(x.shape[0], -1, x.shape[-1])
    return _pick(x, flags, a_plain, a_shared, x_shared)


# ---------------------------------------------------------------------------------------------- triton

_kernels = None  # the _triton_kernels module once imported
_triton_state: Optional[bool] = None  # None: not tried yet; True: works; False: off for this process
_off_reason: Optional[str] = None
_warned_causes: set[str] = set()  # each failure cause is logged once per process
_enabled = os.environ.get("STYLEALIGNED_TRITON", "1").strip().lower() not in ("0", "false", "off", "no")


def set_triton_enabled(enabled: bool) -> None:
    """Allow or forbid the Triton path (STYLEALIGNED_TRITON=0 forbids it from the start)."""
    global _enabled
    _enabled = bool(enabled)


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def _load_kernels():
    global _kernels
    if _kernels is None:
        from . import _triton_kernels

        _kernels = _triton_kernels
    return _kernels


def disable_triton(reason: str, exc: Optional[BaseException] = None) -> None:
    """Turn the Triton path off for this process (one WARNING naming the cause)."""
    global _triton_state, _off_reason
    if _triton_state is not False:
        _warn_once(reason, f"fused Triton AdaIN is off for this process ({reason}); using the torch path", exc)
        _off_reason = reason
    _triton_state = False


def _warn_once(cause: str, message: str, exc: Optional[BaseException] = None) -> None:
    if cause not in _warned_causes:
        _warned_causes.add(cause)
        log.warning("StyleAligned: %s.", message, exc_info=exc)


def _recurs(exc: BaseException) -> bool:
    """Whether the failure is Triton's own (compiler, resources): the same kernel would fail again."""
    return any(kind.__module__.split(".")[0] == "triton" for kind in type(exc).__mro__)


def reset_triton_state() -> None:
    """Forget an earlier failure and its warnings (tests)."""
    global _triton_state, _off_reason
    _triton_state = None
    _off_reason = None
    _warned_causes.clear()


def triton_status() -> str:
    """One line for logs and benchmarks: whether the fused path has run, and why not if it is off."""
    if not _enabled:
        return "switched off (STYLEALIGNED_TRITON=0 or set_triton_enabled(False))"
    if _triton_state is None:
        return "not used yet"
    return "in use" if _triton_state else f"off: {_off_reason}"


def triton_usable(x: torch.Tensor) -> bool:
    """Whether the fused path may run on this tensor (CUDA, or any device under TRITON_INTERPRET=1)."""
    if not _enabled or _triton_state is False or x.dtype not in TRITON_DTYPES or x.dim() != 3 or needs_grad(x):
        return False  # (the kernels are not differentiable: with autograd recording, the torch path runs)
    if x.device.type != "cuda" and not (_interpreting() and x.device.type == "cpu"):
        return False
    if _triton_state is None:
        try:
            _load_kernels()
        except Exception as exc:  # Triton missing or broken: the torch path is exact
            disable_triton(f"Triton could not be imported: {type(exc).__name__}: {exc}", exc)
            return False
    return True


@dataclass(frozen=True)
class _Plan:
    """Launch parameters for one input shape (cached: the same few shapes recur every step)."""

    stats_block_l: int
    stats_block_c: int
    splits: int
    split_len: int
    block_l: int
    block_c: int
    tiles_per_program: int
    stats_grid: tuple[int, int, int]
    apply_grid: tuple[int, int, int]
    stats_warps: int
    apply_warps: int


_plans: dict[tuple, _Plan] = {}
_sm_counts: dict[tuple, int] = {}


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _channel_block(channels: int, cap: int) -> int:
    """The widest power-of-two block <= cap that tiles the channels exactly, else the covering one."""
    for block in (cap, cap // 2, cap // 4, cap // 8):
        if block >= MIN_BLOCK and channels % block == 0:
            return block
    return max(MIN_BLOCK, min(cap, triton_next_pow2(channels)))


def triton_next_pow2(n: int) -> int:
    p = 1
    while p < n:
        p *= 2
    return p


def _multiprocessors(device: torch.device) -> int:
    key = (device.type, device.index)
    count = _sm_counts.get(key)
    if count is None:
        count = 4
        if device.type == "cuda":
            count = torch.cuda.get_device_properties(device).multi_processor_count
        _sm_counts[key] = count
    return count


def _plan(rows: int, tokens: int, channels: int, element_size: int, device: torch.device) -> _Plan:
    key = (rows, tokens, channels, element_size, device.type, device.index)
    plan = _plans.get(key)
    if plan is not None:
        return plan
    sms = _multiprocessors(device)
    target_programs = 4 * sms

    # Statistics: narrow channel blocks (64 bytes of a token per row of the tile), tokens split so that
    # the grid fills the GPU; each split is merged by the apply kernel.
    stats_block_c = _channel_block(channels, 32 if element_size <= 2 else 16)
    stats_block_l = max(MIN_BLOCK, min(64, triton_next_pow2(tokens)))
    cblocks = _cdiv(channels, stats_block_c)
    max_splits = _cdiv(tokens, stats_block_l)
    splits = max(1, min(16, max_splits, _cdiv(target_programs, rows * cblocks)))
    split_len = _cdiv(_cdiv(tokens, splits), stats_block_l) * stats_block_l
    splits = _cdiv(tokens, split_len)

    # Apply: tiles of ~4096 elements, several tiles per program so the merge of the splits is amortised.
    block_c = _channel_block(channels, 128)
    block_l = max(MIN_BLOCK, min(triton_next_pow2(tokens), 4096 // block_c))
    tiles = _cdiv(tokens, block_l)
    apply_cblocks = _cdiv(channels, block_c)
    per_program = max(1, min(8, tiles, (rows * apply_cblocks * tiles) // (4 * target_programs) or 1))
    programs = _cdiv(tiles, per_program)
    plan = _Plan(
        stats_block_l=stats_block_l,
        stats_block_c=stats_block_c,
        splits=splits,
        split_len=split_len,
        block_l=block_l,
        block_c=block_c,
        tiles_per_program=per_program,
        stats_grid=(splits, cblocks, rows),
        apply_grid=(programs, apply_cblocks, rows),
        stats_warps=4,
        apply_warps=4 if block_l * block_c <= 4096 else 8,
    )
    _plans[key] = plan
    return plan


def triton_share_reference(x: torch.Tensor, layout: BatchLayout, flags: ShareFlags):
    """The fused path: raises if Triton fails (the caller falls back)."""
    if not flags.any_adain and not flags.share:
        return x, x, x
    kernels = _load_kernels()
    rows, tokens, channels = x.shape
    want_plain, want_a_shared, want_x_shared = flags.buffers
    plan = _plan(rows, tokens, channels, x.element_size(), x.device)
    a_plain = torch.empty_like(x, memory_format=torch.contiguous_format) if want_plain else None
    a_shared = x.new_empty((rows, 2 * tokens, channels)) if want_a_shared else None
    x_shared = x.new_empty((rows, 2 * tokens, channels)) if want_x_shared else None
    # Unused pointer slots get any valid tensor; constexpr flags keep the kernel from touching them.
    placeholder = a_plain if a_plain is not None else (a_shared if a_shared is not None else x_shared)
    if flags.any_adain:
        parts = torch.empty((2, rows, plan.splits, channels), device=x.device, dtype=torch.float32)
        mean_part, m2_part = parts[0], parts[1]
    else:
        mean_part = m2_part = placeholder
    stride_row, stride_tok, stride_ch = x.stride()
    with _on_device(x.device):
        if flags.any_adain:
            kernels._stats_kernel[plan.stats_grid](
                x, mean_part, m2_part, tokens, channels, plan.splits, plan.split_len,
                stride_row, stride_tok, stride_ch,
                BLOCK_L=plan.stats_block_l, BLOCK_C=plan.stats_block_c, num_warps=plan.stats_warps,
            )
        kernels._apply_kernel[plan.apply_grid](
            x, mean_part, m2_part,
            a_plain if a_plain is not None else placeholder,
            a_shared if a_shared is not None else placeholder,
            x_shared if x_shared is not None else placeholder,
            tokens, channels, layout.images_per_chunk, layout.reference_index,
            plan.splits, plan.split_len, plan.tiles_per_program, VARIANCE_EPS,
            stride_row, stride_tok, stride_ch,
            BLOCK_L=plan.block_l, BLOCK_C=plan.block_c, NEED_STATS=flags.any_adain,
            A_PLAIN=want_plain, A_SHARED=want_a_shared, X_SHARED=want_x_shared,
            NEED_REF=want_a_shared or want_x_shared, num_warps=plan.apply_warps,
        )
    return _pick(x, flags, a_plain, a_shared, x_shared)


def _on_device(device: torch.device):
    if device.type == "cuda" and device.index is not None and device.index != torch.cuda.current_device():
        return torch.cuda.device(device.index)
    return contextlib.nullcontext()


# -------------------------------------------------------------------------------------------- dispatch


def fused_share_reference(x: torch.Tensor, layout: BatchLayout, flags: ShareFlags):
    """(q, k, v) for q_in = k_in = v_in = x: Triton where usable, else the exact torch path."""
    global _triton_state
    if triton_usable(x):
        try:
            outputs = triton_share_reference(x, layout, flags)
            _triton_state = True
            return outputs
        except torch.cuda.OutOfMemoryError:
            raise  # the torch path needs the same buffers: the user must hear about the memory, not a slowdown
        except Exception as exc:
            cause = f"{type(exc).__name__}: {exc}"
            if _recurs(exc):
                disable_triton(cause, exc)
            else:
                # One warning per kind of failure (its message may differ by shape); later calls retry the kernels.
                _warn_once(type(exc).__qualname__, f"fused Triton AdaIN failed ({cause}); that call used the torch path, "
                           f"later calls try the kernels again", exc)
    return torch_share_reference(x, layout, flags)
