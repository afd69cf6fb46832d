"""The host's own multi-GPU sampling (ComfyUI 0.33: the `MultiGPU_WorkUnits` node, "MultiGPU CFG Split",
and `comfy.samplers._calc_cond_batch_multigpu`) with StyleAlignedPatch, run on the CPU.

The host splits one step's conditioning chunks (here: the positive on one device, the negative on the
other) over model clones, one per device, each called from its own worker thread at the same time. The
clones come from the loader's factory (`cached_patcher_init`, as the core loaders register it) and share
the pack's patch objects. On a CPU-only machine the host lists one device; the test lists a second CPU
device (`cpu:0`, a distinct dict key for the host, the same memory for torch) in
`comfy.model_management.get_all_torch_devices`, the one place the node asks which devices exist. Nothing
else of the host is replaced: its node, clones, scheduler and thread pool run as shipped.

Held: the images equal the ordinary single-device run of the same patched model; the reference equals the
unpatched model's, the targets are styled. Both orders of StyleAlignedPatch and the MultiGPU node; also with a
ControlNet on the prompts (the host deep-clones it for the second device).
"""

import pytest
import torch

from host.comfy_env import load_host
from host.sampling import run_node, sample, style_aligned
from host.tiny_dit_models import dit_conditioning, dit_noise, tiny_dit
from host.tiny_models import tiny_conditioning, tiny_controlnet, tiny_model

STEPS = 2
SECOND_DEVICE = torch.device("cpu", 0)  # != torch.device("cpu") as a dict key: the host sees two devices


@pytest.fixture
def multigpu(pack, monkeypatch):
    """The host's MultiGPU module, with a second CPU device listed; skips where the host has none."""
    load_host()
    import comfy.model_management
    import comfy.samplers

    try:
        import comfy.multigpu  # noqa: F401
    except ImportError:
        pytest.skip("this ComfyUI has no multi-GPU sampling (no comfy.multigpu; added after 0.3.75)")
    if not hasattr(comfy.samplers, "_calc_cond_batch_multigpu"):
        pytest.skip("this ComfyUI's sampler has no _calc_cond_batch_multigpu")
    primary = comfy.model_management.get_torch_device()
    monkeypatch.setattr(comfy.model_management, "get_all_torch_devices",
                        lambda exclude_current=False: [SECOND_DEVICE] if exclude_current else [primary, SECOND_DEVICE])
    seen = {"splits": [], "workers": []}  # per model step: the devices split over; per submit: the worker's device
    real = comfy.samplers._calc_cond_batch_multigpu

    def counting(model, conds, x_in, timestep, model_options):
        seen["splits"].append(sorted(str(device) for device in model_options["multigpu_clones"]))
        return real(model, conds, x_in, timestep, model_options)

    monkeypatch.setattr(comfy.samplers, "_calc_cond_batch_multigpu", counting)
    real_submit = comfy.multigpu.MultiGPUThreadPool.submit

    def recording_submit(pool, device, fn, *args, **kwargs):
        seen["workers"].append(str(device))
        return real_submit(pool, device, fn, *args, **kwargs)

    monkeypatch.setattr(comfy.multigpu.MultiGPUThreadPool, "submit", recording_submit)
    yield seen
    comfy.model_management.unload_all_models()  # while both devices are listed: no clone stays loaded on cpu:0
    assert not [loaded for loaded in comfy.model_management.current_loaded_models if loaded.device == SECOND_DEVICE]


def loader_made(factory, *args):
    """A model as a core loader returns it: with the factory the host reloads it from for another device."""
    model = factory(*args)
    model.cached_patcher_init = (factory, args)
    return model


def split_over_two_devices(model):
    return run_node("MultiGPU_WorkUnits", model=model, max_gpus=2)[0]


def with_controlnet(conds, control_net):
    """ControlNetApplyAdvanced on both prompts: the host deep-clones the ControlNet for the second device."""
    from host.comfy_env import host_node_class

    hint = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(4))
    return host_node_class("ControlNetApplyAdvanced")().apply_controlnet(*conds, control_net, hint, 1.0, 0.0, 1.0)[:2]


CASES = {
    "sd15": (lambda: loader_made(tiny_model, "sd15", 0),
             lambda: (tiny_conditioning("sd15", seed=1), tiny_conditioning("sd15", seed=2)),
             lambda: torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(3))),
    "sd15_controlnet": (lambda: loader_made(tiny_model, "sd15", 0),
                        lambda: with_controlnet((tiny_conditioning("sd15", seed=1), tiny_conditioning("sd15", seed=2)), tiny_controlnet()),
                        lambda: torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(3))),
    "flux": (lambda: loader_made(tiny_dit, "flux", 0),
             lambda: (dit_conditioning("flux", seed=1), dit_conditioning("flux", seed=2)),
             lambda: dit_noise("flux", 3, seed=3)),
}


@pytest.mark.parametrize("order", ["stylealigned_first", "multigpu_first"])
@pytest.mark.parametrize("kind", sorted(CASES))
def test_host_multigpu_split_gives_the_single_device_images(multigpu, kind, order):
    make_model, make_conds, make_noise = CASES[kind]
    model = make_model()
    positive, negative = make_conds()
    noise = make_noise()

    plain = sample(model, noise, positive, negative, steps=STEPS)
    single = sample(style_aligned(model, reference_strength=0.5), noise, positive, negative, steps=STEPS)
    assert not multigpu["splits"]  # the ordinary path so far

    if order == "stylealigned_first":
        split = split_over_two_devices(style_aligned(model, reference_strength=0.5))
    else:
        split = style_aligned(split_over_two_devices(model), reference_strength=0.5)
    clones = split.get_additional_models_with_key("multigpu")
    assert [clone.load_device for clone in clones] == [SECOND_DEVICE]
    assert clones[0].model is not split.model  # a clone of its own, reloaded by the loader's factory
    out = sample(split, noise, positive, negative, steps=STEPS)
    control = positive[0][1].get("control")
    if control is not None:  # each device ran a ControlNet of its own
        assert list(control.multigpu_clones) == [SECOND_DEVICE]

    splits, workers = multigpu["splits"], multigpu["workers"]
    assert splits and all(devices == ["cpu", "cpu:0"] for devices in splits)  # the host's split ran...
    assert workers.count("cpu") == workers.count("cpu:0") == len(splits)  # ...each step on both workers
    scale = max(1.0, single.abs().max().item())
    assert out.isfinite().all()
    assert (out - single).abs().max().item() < 1e-5 * scale
    assert (out[0] - plain[0]).abs().max().item() < 1e-5 * scale  # the reference as without the pack
    assert (out[1:] - plain[1:]).abs().max().item() > 1e-2  # targets styled
