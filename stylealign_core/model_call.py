"""The model-call wrapper (ComfyUI's model_function_wrapper contract): runs once per UNet call.

It checks the batch against the reference slot before the UNet runs (so a bad reference_index is an
error naming the node, not a traceback from inside attention), decides whether the schedule is active
at this sigma, and afterwards verifies that the attention patch ran at all: a model whose blocks never
call attn1 patches (a DiT such as Flux) must not silently produce unaligned images.
"""

from __future__ import annotations

from typing import Callable, Optional

from .batch_layout import NODE_NAME, batch_layout
from .errors import StyleAlignedError
from .options import StyleAlignedOptions
from .runtime import CallContext, PatchRuntime


class StyleAlignedModelCall:
    def __init__(
        self, options: StyleAlignedOptions, runtime: PatchRuntime, previous_wrapper: Optional[Callable] = None
    ) -> None:
        self.options = options
        self.runtime = runtime
        self.previous_wrapper = previous_wrapper

    def __call__(self, apply_model: Callable, args: dict):
        x, timestep = args["input"], args["timestep"]
        # Checked here, before the UNet runs, so a bad batch is one clear error and not a traceback.
        batch_layout(x.shape[0], args.get("cond_or_uncond"), self.options.reference_index)
        sigma = float(timestep.max())
        self.runtime.current_call = CallContext(active=self.options.sigma_is_active(sigma))
        calls_before = self.runtime.patch_calls
        try:
            if self.previous_wrapper is not None:
                output = self.previous_wrapper(apply_model, args)
            else:
                output = apply_model(x, timestep, **args["c"])
        finally:
            self.runtime.current_call = None
            self.runtime.pending_shift = None
        if self.runtime.patch_calls == calls_before:
            raise StyleAlignedError(
                f"{NODE_NAME}: this model never ran the self-attention patch, so nothing was aligned. StyleAligned "
                f"works with UNet models (SD1.x, SD2.x, SDXL); transformer models such as Flux or SD3 do not "
                f"call attn1 patches. Bypass the node for this model."
            )
        return output
