"""The fused Triton path against the exact torch path, case by case.

    TRITON_INTERPRET=1 python tests/benchmarks/check_fused.py --device cpu    # Triton's interpreter
    python tests/benchmarks/check_fused.py --device cuda                      # compiled, on the GPU

--device cpu sets TRITON_INTERPRET=1 itself (before Triton is imported). Prints one JSON object per case
({"case", "ok", "detail", ...}) and exits 1 if any case fails; tests/test_core_fused.py runs it in a
subprocess and asserts every case.

What "equal" means: same outputs (x itself or a new buffer, k and v one tensor or two) and shapes; the
reference rows bit-identical to the input in both; values equal within float32 rounding of the affine
(float32) or one rounding step of the output dtype (float16, bfloat16); both paths within the same bound
of a float64 evaluation of AdaIN.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Case:
    name: str
    dtype: str
    rows: int
    tokens: int
    channels: int
    chunks: int
    reference_index: int
    flags: tuple = (True, True, False, True)  # adain q, k, v, share
    data: str = "random"  # random | hard | constant | large | noncontiguous
    cuda_only: bool = False


DEFAULT = (True, True, False, True)
ALL_FLAGS = [DEFAULT, (True, True, True, True), (False, False, False, True), (True, True, False, False),
             (False, True, False, True), (False, False, True, True), (True, False, False, False)]


def _cases() -> list[Case]:
    cases = []
    for dtype in ("float32", "float16"):
        for i, flags in enumerate(ALL_FLAGS):
            cases.append(Case(f"{dtype}-odd-flags{i}", dtype, 6, 37, 20, 2, 1, flags))
        cases += [
            Case(f"{dtype}-one-token", dtype, 4, 1, 8, 2, 0),
            Case(f"{dtype}-one-token-one-chunk", dtype, 3, 1, 24, 1, 2),
            Case(f"{dtype}-constant-targets", dtype, 6, 9, 16, 2, 0, data="constant"),
            Case(f"{dtype}-three-chunks", dtype, 9, 50, 40, 3, 2),
            Case(f"{dtype}-token-splits", dtype, 4, 300, 16, 2, 1),
            Case(f"{dtype}-tiles-per-program", dtype, 8, 2000, 64, 2, 0),
            Case(f"{dtype}-hard-statistics", dtype, 4, 129, 33, 1, 3, data="hard"),
            Case(f"{dtype}-noncontiguous", dtype, 6, 40, 24, 2, 0, data="noncontiguous"),
        ]
    cases += [
        Case("float16-large-values", "float16", 3, 64, 8, 1, 0, data="large"),
        Case("bfloat16-odd", "bfloat16", 6, 37, 20, 2, 1),
        # Shapes of real UNets (CUDA only: the interpreter would take minutes).
        Case("float16-sd15-level1", "float16", 10, 4096, 320, 2, 0, cuda_only=True),
        Case("float16-sdxl-level1-ref1", "float16", 4, 4096, 640, 2, 0, cuda_only=True),
        Case("float16-sdxl-level2-ref4", "float16", 10, 1024, 1280, 2, 0, cuda_only=True),
        Case("float32-sdxl-level2-ref4", "float32", 10, 1024, 1280, 2, 0, cuda_only=True),
        Case("float16-sdxl-level1-ref4-values", "float16", 10, 4096, 640, 2, 0, (True, True, True, True), cuda_only=True),
    ]
    return cases


CASES = _cases()


def make_input(case: Case, device):
    import torch

    dtype = getattr(torch, case.dtype)
    generator = torch.Generator().manual_seed(zlib.crc32(case.name.encode()))
    shape = (case.rows, case.tokens, case.channels)

    def randn(*size):
        return torch.randn(*size, generator=generator)

    if case.data == "constant":
        x = torch.full(shape, 0.5)
        images = case.rows // case.chunks
        for chunk in range(case.chunks):
            x[chunk * images + case.reference_index] = randn(case.tokens, case.channels)
    elif case.data == "large":
        x = randn(*shape) * 3000
    elif case.data == "hard":
        # Targets with tiny spread around large means, a reference with a wide one: the affine's terms
        # are large and cancel, the case where rounding shows.
        x = randn(*shape) * 0.01 + randn(case.rows, 1, case.channels) * 4
        x[case.reference_index] = randn(case.tokens, case.channels) * 3
    else:
        x = randn(*shape) * (torch.rand(case.rows, 1, case.channels, generator=generator) * 2 + 0.25)
        x = x + randn(case.rows, 1, case.channels)
    x = x.to(dtype).to(device)
    if case.data == "noncontiguous":
        wide = torch.zeros((case.rows, case.tokens, case.channels * 2), dtype=dtype, device=device)
        wide[..., ::2] = x
        x = wide[..., ::2]
    return x


def float64_adain(x, layout):
    import torch
    from stylealign_core import VARIANCE_EPS

    grouped = x.double().reshape(layout.chunks, layout.images_per_chunk, x.shape[1], x.shape[2])
    variance, mean = torch.var_mean(grouped, dim=2, keepdim=True, correction=0)
    std = (variance + VARIANCE_EPS).sqrt()
    r = layout.reference_index
    scale = std[:, r : r + 1] / std
    out = (grouped - mean) * scale + mean[:, r : r + 1]
    # Size of the affine's terms, x * scale and shift: float32 rounding is relative to them.
    term = (grouped * scale).abs().amax(dim=2, keepdim=True) + (mean[:, r : r + 1] - mean * scale).abs()
    return out.reshape(x.shape), term.expand_as(grouped).reshape(x.shape)


def tolerance(dtype, term, value):
    import torch

    if dtype == torch.float32:
        return 8 * torch.finfo(torch.float32).eps * term + 1e-6
    # One step of the output dtype at the value's size, plus the float32 affine's own rounding.
    return 2 * torch.finfo(dtype).eps * value.abs() + 8 * torch.finfo(torch.float32).eps * term + 1e-6


def check_case(case: Case, device) -> dict:
    import torch
    from stylealign_core import batch_layout
    from stylealign_core.maths.fused_adain import torch_share_reference, triton_share_reference
    from stylealign_core.share_flags import ShareFlags

    x = make_input(case, device)
    layout = batch_layout(case.rows, list(range(case.chunks)), case.reference_index)
    flags = ShareFlags(*case.flags)
    eager = torch_share_reference(x, layout, flags)
    fused = triton_share_reference(x, layout, flags)
    if device.type == "cuda":
        torch.cuda.synchronize()
    problems = []
    # Same structure: which outputs are the input itself, which share one buffer.
    for name, a, b in zip("qkv", eager, fused):
        if (a is x) != (b is x):
            problems.append(f"{name}: input passed through in one path only")
        if a.shape != b.shape or a.dtype != b.dtype:
            problems.append(f"{name}: shape/dtype {tuple(a.shape)} {a.dtype} vs {tuple(b.shape)} {b.dtype}")
    if (eager[1] is eager[2]) != (fused[1] is fused[2]):
        problems.append("k and v: one tensor in one path, two in the other")
    if problems:
        return {"case": case.name, "ok": False, "detail": "; ".join(problems)}

    truth, term = float64_adain(x, layout)
    images = layout.images_per_chunk
    worst = 0.0
    for name, adain, a, b in zip("qkv", case.flags[:3], eager, fused):
        if not torch.isfinite(b).all():
            problems.append(f"{name}: non-finite values in the fused output")
        if b is x:
            continue
        own = b[:, : case.tokens]
        # Reference rows: the input, bit for bit (and its tokens appended to itself).
        for chunk in range(layout.chunks):
            row = chunk * images + case.reference_index
            if not torch.equal(b[row, : case.tokens], x[row]) or not torch.equal(a[row, : case.tokens], x[row]):
                problems.append(f"{name}: reference row {row} not bit-identical")
        if b.shape[1] == 2 * case.tokens:
            for row in range(case.rows):
                ref_row = (row // images) * images + case.reference_index
                if not torch.equal(b[row, case.tokens :], x[ref_row]):
                    problems.append(f"{name}: row {row} does not end with the reference's tokens")
                    break
        if adain:
            limit = tolerance(x.dtype, term, truth)
            diff = (own.double() - a[:, : case.tokens].double()).abs()
            worst = max(worst, (diff / limit).max().item())
            if (diff > limit).any():
                problems.append(f"{name}: fused vs torch differ by {diff.max().item():.3g} (limit {limit.min().item():.3g}..)")
            for path, out in (("fused", own), ("torch", a[:, : case.tokens])):
                err = (out.double() - truth).abs()
                if (err > 2 * limit).any():
                    problems.append(f"{name}: {path} vs float64 AdaIN off by {err.max().item():.3g}")
        elif not torch.equal(own, x):
            problems.append(f"{name}: not normalised but differs from the input")
    if case.data == "constant" and case.flags[0]:
        # Constant targets map onto their reference's mean.
        q = fused[0].float()
        for row in range(case.rows):
            ref_row = (row // images) * images + case.reference_index
            if row != ref_row:
                expected = x[ref_row].float().mean(0, keepdim=True).expand_as(q[row])
                if not torch.allclose(q[row], expected, atol=2e-3, rtol=0):
                    problems.append(f"constant target row {row} not at the reference mean")
    return {"case": case.name, "ok": not problems, "detail": "; ".join(problems) or "equal", "worst_vs_limit": worst}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], required=True)
    parser.add_argument("--cases", default=None, help="comma list of case names (default: all for the device)")
    args = parser.parse_args(argv)
    if args.device == "cpu":
        os.environ["TRITON_INTERPRET"] = "1"  # read when the kernels are defined, i.e. first imported
    sys.path.insert(0, str(REPO_ROOT))
    import torch

    try:
        import triton  # noqa: F401
    except Exception as exc:
        print(json.dumps({"case": "import-triton", "ok": None, "detail": f"triton not importable: {exc}"}))
        return 3
    device = torch.device(args.device)
    names = set(args.cases.split(",")) if args.cases else None
    failed = 0
    for case in CASES:
        if names is not None and case.name not in names:
            continue
        if names is None and case.cuda_only and device.type != "cuda":
            continue
        try:
            result = check_case(case, device)
        except Exception as exc:
            result = {"case": case.name, "ok": False, "detail": f"{type(exc).__name__}: {exc}"}
        failed += not result["ok"]
        print(json.dumps(result), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
