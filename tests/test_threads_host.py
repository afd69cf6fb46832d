"""Per-call state is safe under threads: two model calls of one patched model (and of its clone, as the
host's multi-GPU sampling runs one step's chunks on clones in threads) forced to interleave inside
attention each give exactly what they give alone.

The interleaving is deterministic: a patch registered after StyleAligned's (UNet: an attn1 patch; the
transformer route: the attention backend StyleAligned calls) waits on a two-party barrier in every layer,
so both calls are between "StyleAligned prepared this layer" and "attention ran" at the same time.
"""

import threading

import pytest
import torch

from host.sampling import style_aligned
from host.tiny_dit_models import dit_conditioning, dit_noise, tiny_dit
from host.tiny_models import tiny_conditioning, tiny_model

SIGMA = 2.0


class Rendezvous:
    """Off: passes. On: every pass waits for the other thread (a two-party barrier)."""

    def __init__(self):
        self.barrier = None

    def __call__(self):
        if self.barrier is not None:
            self.barrier.wait()

    def __deepcopy__(self, memo):
        return self


def unet_with_rendezvous(rendezvous):
    model = style_aligned(tiny_model("sd15"), reference_strength=0.5)  # the strength lives in per-call state

    def attn1_after_ours(q, k, v, extra_options):
        rendezvous()
        return q, k, v

    model.set_model_attn1_patch(attn1_after_ours)
    return model, dict(c_crossattn=tiny_conditioning("sd15", batch=3, seed=1)[0][0])


def flux_with_rendezvous(rendezvous):
    base = tiny_dit("flux").clone()

    def backend_override(backend, *args, **kwargs):  # StyleAligned chains it: its backend
        rendezvous()
        return backend(*args, **kwargs)

    base.model_options.setdefault("transformer_options", {})["optimized_attention_override"] = backend_override
    model = style_aligned(base, reference_strength=0.5)
    cond, extras = dit_conditioning("flux", batch=3, seed=1)[0]
    return model, dict(c_crossattn=cond, y=extras["pooled_output"], guidance=torch.full((3,), 3.5))


def model_call(model, x, conds):
    """One model call as the sampler makes it (one conditioning chunk of three images)."""
    import comfy.patcher_extension

    options = comfy.patcher_extension.copy_nested_dicts(model.model_options["transformer_options"])
    options["wrappers"] = comfy.patcher_extension.copy_nested_dicts(model.wrappers)
    options["cond_or_uncond"] = [0]
    options["sigmas"] = torch.full((x.shape[0],), SIGMA)
    with torch.no_grad():
        return model.model.apply_model(x, torch.full((x.shape[0],), SIGMA), transformer_options=options, **conds)


@pytest.mark.parametrize("route", ["unet", "flux"])
def test_two_threads_interleaved_inside_attention_give_what_each_gives_alone(pack, route):
    rendezvous = Rendezvous()
    if route == "unet":
        model, conds = unet_with_rendezvous(rendezvous)
        inputs = [torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(seed)) for seed in (1, 2)]
    else:
        model, conds = flux_with_rendezvous(rendezvous)
        inputs = [dit_noise("flux", 3, seed=seed) for seed in (1, 2)]
    clone = model.clone()  # the host's multi-GPU clones share the pack's patch objects
    alone = [model_call(model, inputs[0], conds), model_call(clone, inputs[1], conds)]
    assert (alone[0] - alone[1]).abs().max() > 1e-3

    rendezvous.barrier = threading.Barrier(2, timeout=60)
    results, errors = [None, None], []

    def run(i, m):
        try:
            results[i] = model_call(m, inputs[i], conds)
        except Exception as error:  # noqa: BLE001  (reported below)
            errors.append(error)
            rendezvous.barrier.abort()

    threads = [threading.Thread(target=run, args=(i, m)) for i, m in enumerate((model, clone))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rendezvous.barrier = None
    assert not errors, errors
    for got, want in zip(results, alone):
        assert torch.equal(got, want)
