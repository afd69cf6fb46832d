"""The fast paths of the shared-attention maths: the single-tensor torch path, the fused Triton kernels
(held equal to the torch path under TRITON_INTERPRET=1, in a subprocess), the fallback, the benchmark."""

import importlib.util
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from stylealign_core import VARIANCE_EPS, PatchRuntime, SharedAttentionPatch, StyleAlignedOptions, batch_layout
from stylealign_core.maths import fused_adain
from stylealign_core.maths.adain import channel_stats
from stylealign_core.maths.fused_adain import fused_share_reference, torch_share_reference
from stylealign_core.share_flags import ShareFlags
from stylealign_core.unet.attn1_patch import _share_separate_inputs, share_with_reference

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
sys.path.insert(0, str(TESTS_DIR / "benchmarks"))
from check_fused import CASES  # noqa: E402

FLAG_SETS = [
    (True, True, False, True),
    (True, True, True, True),
    (False, False, False, True),
    (True, True, False, False),
    (False, True, False, True),
    (False, False, True, True),
    (True, False, False, False),
    (False, False, False, False),
]


def options_for(flags, reference_index=0):
    q, k, v, share = flags
    return StyleAlignedOptions(
        reference_index=reference_index, adain_queries=q, adain_keys=k, adain_values=v, share_attention=share
    )


def styled_batch(rows, tokens, channels, dtype, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, tokens, channels, generator=generator)
    x = x * (torch.rand(rows, 1, channels, generator=generator) * 2 + 0.25) + torch.randn(rows, 1, channels, generator=generator)
    return x.to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("flags", FLAG_SETS)
def test_single_tensor_path_equals_per_tensor_path(flags, dtype):
    """q_in = k_in = v_in (self-attention) takes the single-tensor path; the per-tensor path (used when
    another patch hands different tensors) gives bit-identical values."""
    x = styled_batch(8, 13, 12, dtype)
    layout = batch_layout(8, [1, 0], 2)
    fast = share_with_reference(x, x, x, layout, options_for(flags, 2))
    separate = _share_separate_inputs(x, x.clone(), x.clone(), layout, ShareFlags(*flags))
    for got, want in zip(fast, separate):
        assert got.shape == want.shape and got.dtype == want.dtype
        assert torch.equal(got, want)


def test_single_tensor_path_shares_buffers_and_passes_input_through():
    x = styled_batch(6, 10, 8, torch.float32)
    layout = batch_layout(6, [1, 0], 0)
    q, k, v = share_with_reference(x, x, x, layout, options_for((True, True, False, True)))
    assert q is not x and k is not v and k.shape == v.shape == (6, 20, 8)
    q, k, v = share_with_reference(x, x, x, layout, options_for((True, True, True, True)))
    assert k is v  # normalised alike: one buffer for both
    q, k, v = share_with_reference(x, x, x, layout, options_for((False, False, False, True)))
    assert q is x and k is v
    q, k, v = share_with_reference(x, x, x, layout, options_for((True, True, False, False)))
    assert q is k and v is x
    assert all(t is x for t in share_with_reference(x, x, x, layout, options_for((False, False, False, False))))


def test_reference_strength_zero_shares_nothing():
    x = styled_batch(4, 5, 6, torch.float32)
    options = StyleAlignedOptions(reference_strength=0.0)
    q, k, v = share_with_reference(x, x, x, batch_layout(4, [0], 0), options)
    assert k.shape == x.shape and v is x


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_cpu_statistics_match_float64(dtype):
    x = styled_batch(6, 257, 24, dtype, seed=3) * 5 + 40  # large means: cancellation would show
    mean, std = channel_stats(x.reshape(2, 3, 257, 24))
    variance64, mean64 = torch.var_mean(x.double().reshape(2, 3, 257, 24), dim=-2, keepdim=True, correction=0)
    torch.testing.assert_close(mean.double(), mean64, rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(std.double(), (variance64 + VARIANCE_EPS).sqrt(), rtol=1e-5, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_autograd_inputs_take_a_differentiable_path(dtype):
    x = styled_batch(6, 7, 8, dtype).requires_grad_()
    layout = batch_layout(6, [1, 0], 0)
    q, k, v = share_with_reference(x, x, x, layout, options_for((True, True, False, True)))
    assert q.requires_grad and k.requires_grad
    (q.float().sum() + k.float().square().sum() + v.float().sum()).backward()
    assert x.grad is not None and x.grad.isfinite().all()
    with torch.no_grad():
        plain = share_with_reference(x, x, x, layout, options_for((True, True, False, True)))
    assert all(torch.equal(a.detach(), b) for a, b in zip((q, k, v), plain))
    fused_adain.set_triton_enabled(True)
    assert not fused_adain.triton_usable(x)  # never the (non-differentiable) kernels


def test_cpu_tensors_use_the_torch_path(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    x = styled_batch(4, 6, 8, torch.float32)
    assert not fused_adain.triton_usable(x)


class CompilationError(Exception):
    """Stands in for triton.compiler.errors.CompilationError (a failure that recurs on every call)."""


CompilationError.__module__ = "triton.compiler.errors"


def run_broken_triton(monkeypatch, caplog, error, calls_to_make=3):
    """Calls fused_share_reference with a Triton path that raises `error`; returns (outputs, tries, warnings)."""
    x = styled_batch(6, 9, 16, torch.float16)
    layout = batch_layout(6, [1, 0], 1)
    flags = ShareFlags(True, True, False, True)
    tries = []

    def broken(*args):
        tries.append(1)
        raise error

    monkeypatch.setattr(fused_adain, "triton_usable", lambda tensor: fused_adain._triton_state is not False)
    monkeypatch.setattr(fused_adain, "triton_share_reference", broken)
    with caplog.at_level(logging.DEBUG, logger=fused_adain.log.name):
        outputs = [fused_share_reference(x, layout, flags) for _ in range(calls_to_make)]
    want = torch_share_reference(x, layout, flags)
    for got in outputs:
        assert all(torch.equal(a, b) for a, b in zip(got, want))
    warnings = [r for r in caplog.records if "Triton" in r.getMessage()]
    return len(tries), warnings


@pytest.fixture
def fresh_triton_state():
    fused_adain.reset_triton_state()
    yield
    fused_adain.reset_triton_state()


def test_triton_launch_failure_falls_back_per_call_with_one_warning(monkeypatch, caplog, fresh_triton_state):
    tries, warnings = run_broken_triton(monkeypatch, caplog, RuntimeError("no GPU compiler"))
    assert tries == 3  # each call tries the kernels again: one failure does not slow the whole process down
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert "RuntimeError: no GPU compiler" in warnings[0].getMessage()
    assert fused_adain._triton_state is not False


def test_triton_compile_error_turns_the_fused_path_off_with_one_warning(monkeypatch, caplog, fresh_triton_state):
    tries, warnings = run_broken_triton(monkeypatch, caplog, CompilationError("unsupported tile size"))
    assert tries == 1  # a compile error recurs on every call: off for the process after the first
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert "CompilationError: unsupported tile size" in warnings[0].getMessage()
    assert fused_adain.triton_status() == "off: CompilationError: unsupported tile size"


def test_triton_import_failure_is_one_warning_naming_the_cause(monkeypatch, caplog, fresh_triton_state):
    def no_triton():
        raise ModuleNotFoundError("No module named 'triton'")

    monkeypatch.setattr(fused_adain, "_load_kernels", no_triton)
    monkeypatch.setenv("TRITON_INTERPRET", "1")  # lets a CPU tensor ask for the kernels
    x = styled_batch(4, 6, 8, torch.float32)
    with caplog.at_level(logging.DEBUG, logger=fused_adain.log.name):
        assert not fused_adain.triton_usable(x)
        assert not fused_adain.triton_usable(x)
    warnings = [r for r in caplog.records if "Triton" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert "No module named 'triton'" in warnings[0].getMessage()


def test_triton_out_of_memory_is_raised_not_swallowed(monkeypatch, caplog, fresh_triton_state):
    with pytest.raises(torch.cuda.OutOfMemoryError):
        run_broken_triton(monkeypatch, caplog, torch.cuda.OutOfMemoryError("CUDA out of memory"), calls_to_make=1)
    assert fused_adain._triton_state is None  # not switched off: nothing was learnt about the kernels
    assert not [r for r in caplog.records if "Triton" in r.getMessage()]


def test_patch_through_switch_still_matches_paper_equations():
    """The patch object (precomputed flags) and share_with_reference agree on a CFG batch."""
    x = styled_batch(10, 16, 8, torch.float32)
    patch = SharedAttentionPatch(StyleAlignedOptions(reference_index=3), PatchRuntime())
    via_patch = patch(x, x, x, {"cond_or_uncond": [1, 0], "block": ("input", 1), "block_index": 0})
    direct = share_with_reference(x, x, x, batch_layout(10, [1, 0], 3), StyleAlignedOptions(reference_index=3))
    assert all(torch.equal(a, b) for a, b in zip(via_patch, direct))


# ------------------------------------------------------------------- Triton, under TRITON_INTERPRET=1

INTERPRETED = [case for case in CASES if not case.cuda_only]


@pytest.fixture(scope="module")
def interpreted_results():
    if importlib.util.find_spec("triton") is None:
        pytest.skip("triton is not importable")
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONWARNINGS="ignore")
    completed = subprocess.run(
        [sys.executable, str(TESTS_DIR / "benchmarks" / "check_fused.py"), "--device", "cpu"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    if completed.returncode == 3:
        pytest.skip(f"triton is not importable: {completed.stdout.strip()}")
    results = {}
    for line in completed.stdout.splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            results[entry["case"]] = entry
    assert results, f"no results from check_fused.py:\n{completed.stdout}\n{completed.stderr[-3000:]}"
    return results


@pytest.mark.parametrize("case", INTERPRETED, ids=[case.name for case in INTERPRETED])
def test_triton_kernels_equal_torch_path(case, interpreted_results):
    result = interpreted_results.get(case.name)
    assert result is not None, f"{case.name} did not run"
    assert result["ok"], result["detail"]


# ----------------------------------------------------------------------------------------- benchmark


def test_benchmark_runs_on_tiny_models():
    """The benchmark script itself (tiny configs, one repetition), so it does not rot."""
    completed = subprocess.run(
        [sys.executable, str(TESTS_DIR / "benchmarks" / "bench_shared_attention.py"), "--device", "cpu",
         "--configs", "sd15-tiny,sdxl-tiny", "--repeats", "2", "--warmup", "0"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    lines = [line for line in completed.stdout.splitlines() if line.startswith(("sd15-tiny", "sdxl-tiny"))]
    assert len(lines) == 2
    for line in lines:
        for variant in ("unpatched", "pack", "straightforward", "floor"):
            assert f"| {variant} " in line
