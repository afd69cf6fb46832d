"""The UNet route's per-model-call logic: runs once per UNet call, around the rest of the model.

`run(call)` takes the call's ModelCallInputs (model_call_inputs.py); the host adapter (nodes/patch_set.py)
calls it from an APPLY_MODEL wrapper, which the host chains with every other wrapper.

It checks the batch against the reference slot before the UNet runs (so a bad reference_index is an
error naming the node, not a traceback from inside attention), decides whether the schedule is active
at this sigma, and afterwards verifies that the attention patch ran at all: a model whose blocks never
call attn1 patches must not silently produce unaligned images.
With a real-image reference it also holds the reference slot on the inverted trajectory: the slot's
input is replaced by the trajectory's latent at this sigma and its denoised prediction by the clean
latent, so any sampler ends the slot on the reference image.
"""

from __future__ import annotations

import logging
from typing import Optional

import torch

from ..batch_layout import NODE_NAME, batch_layout
from ..errors import StyleAlignedError
from ..model_call_inputs import ModelCallInputs
from ..options import StyleAlignedOptions
from ..patch_reached import PatchReached
from ..real_image.reference_trajectory import HeldReference
from .patch_runtime import CallContext, PatchRuntime

log = logging.getLogger(__name__)


class UNetModelCall:
    def __init__(
        self,
        options: StyleAlignedOptions,
        runtime: PatchRuntime,
        held_reference: Optional[HeldReference] = None,
    ) -> None:
        self.options = options
        self.runtime = runtime
        self.held_reference = held_reference
        self._warned_missed_override = False
        self._patch_reached = PatchReached(until_first_reached=False)

    def run(self, call: ModelCallInputs) -> torch.Tensor:
        """One model call: `call.run_model` runs the rest of the model on (possibly changed) input x.

        The self-attention layers whose attention another node replaced in this call (attn1 replace patches,
        replaced_attn1) are left to that node.
        """
        x, timestep, transformer_options = call.x, call.timestep, call.transformer_options
        cond_or_uncond = transformer_options.get("cond_or_uncond")
        replaced_layers = replaced_attn1(transformer_options)
        # Checked here, before the UNet runs, so a bad batch is one clear error and not a traceback.
        layout = batch_layout(
            x.shape[0], cond_or_uncond, self.options.reference_index, self.held_reference is not None, self.options.references
        )
        if self.held_reference is not None:
            x = self.held_reference.hold_input(x, timestep, layout)
        sigma = float(timestep.max())
        self.runtime.current_call = CallContext(
            active=self.options.sigma_is_active(sigma), replaced_layers=frozenset(replaced_layers), layout=layout
        )
        calls_before = self.runtime.patch_calls
        self.runtime.missed_shifts = 0
        self.runtime.projected_adain_missed = 0
        try:
            output = call.run_model(x, transformer_options)
        finally:
            self.runtime.current_call = None
            self.runtime.count_missed(self.runtime.take_pending_shift())
        if self.runtime.projected_adain_missed:
            raise StyleAlignedError(
                f"{NODE_NAME}: adain_on is 'projections (paper)' but the self-attention calls never reached StyleAligned's "
                f"attention override, so the projected queries and keys were not normalised. Another node after "
                f"StyleAlignedPatch may have replaced the attention override; put StyleAlignedPatch last in the model "
                f"chain, or set adain_on to 'inputs'."
            )
        self._report_missed_override()
        self._patch_reached.check(
            self.runtime.patch_calls != calls_before,
            "this model never ran the self-attention patch, so nothing was aligned. The UNet route "
            "needs UNet blocks that call attn1 patches (SD1.x, SD2.x, SDXL); another node may "
            "have replaced the model's blocks. Bypass the node for this model.",
        )
        if self.held_reference is not None:
            output = self.held_reference.hold_output(output, layout)
        return output

    def _report_missed_override(self) -> None:
        """The patch appended reference tokens but no attention call took the pending shift: the attention
        override was not reached (a node replaced it inside the model call), so reference_strength and the
        tiled-keys re-layout (HyperTile) were not applied there. Said once per patch."""
        if self.runtime.missed_shifts and not self._warned_missed_override:
            self._warned_missed_override = True
            log.warning(
                "%s: %d self-attention layers ran without StyleAligned's attention override (another node replaced it "
                "inside the model call): reference_strength%s and the HyperTile key re-layout are not applied there.",
                NODE_NAME, self.runtime.missed_shifts,
                f" ({self.options.reference_strength})" if self.options.reference_strength != 1.0 else "",
            )

    def __deepcopy__(self, memo):
        # ModelPatcher.clone deep-copies model_options; the patch pieces must keep sharing one runtime.
        return self


def replaced_attn1(transformer_options: dict) -> frozenset:
    """The keys of the attn1 replace patches (another node's own self-attention) a model call carries."""
    return frozenset(transformer_options.get("patches_replace", {}).get("attn1", {}).keys())

