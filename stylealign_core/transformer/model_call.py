"""The transformer route's per-model-call logic: once per call, around the rest of the model.

`run(call)` takes the call's ModelCallInputs (model_call_inputs.py) from the host adapter
(nodes/patch_set.py, an APPLY_MODEL wrapper), as the UNet route's model call does. It checks the batch against the reference slot before the model runs (a bad reference_index or a batch
of one is an error naming the node), asks the family for the call's CallLayout, hands it to the
attention override through a copy of transformer_options (with the call's override in the slot: the
adapter put it in front of a later node's that replaced it without chaining), and afterwards checks that the
override was reached when it should have been: another node replacing the attention blocks must not
silently give unaligned images. Only until the first call that reached it: step-caching packs (TeaCache,
first-block caches) legitimately skip the blocks on some later steps.
With a real-image reference it holds the reference slot on the inverted trajectory exactly as the UNet
route does (HeldReference.hold_input / hold_output, shared by both routes).
"""

from __future__ import annotations

import logging
from typing import Optional

import torch

from ..batch_layout import NODE_NAME, BatchLayout, batch_layout
from ..errors import StyleAlignedError
from ..model_call_inputs import ModelCallInputs
from ..options import StyleAlignedOptions
from ..override_chain import OVERRIDE_KEY
from ..patch_reached import PatchReached
from ..real_image.reference_trajectory import HeldReference
from .attention_override import TransformerSharing
from .call_layout import CALL_LAYOUT_KEY, CallLayout
from .family import TransformerFamily

log = logging.getLogger(__name__)


class TransformerModelCall:
    def __init__(
        self,
        options: StyleAlignedOptions,
        family: TransformerFamily,
        sharing: TransformerSharing,
        held_reference: Optional[HeldReference] = None,
    ):
        self.options = options
        self.family = family
        self.sharing = sharing
        self.held_reference = held_reference
        self._patch_reached = PatchReached(until_first_reached=True)
        self._warned_partial = False

    def run(self, call: ModelCallInputs) -> torch.Tensor:
        x, t, c_crossattn = call.x, call.timestep, call.c_crossattn
        transformer_options = dict(call.transformer_options or {})
        batch: BatchLayout = batch_layout(
            x.shape[0], transformer_options.get("cond_or_uncond"), self.options.reference_index, self.held_reference is not None,
            self.options.references,
        )
        if self.held_reference is not None:
            x = self.held_reference.hold_input(x, t, batch)
        active = self.options.sigma_is_active(float(t.max()))
        layout = self.family.call_layout(call.diffusion_model, batch, active, x, c_crossattn, transformer_options, call.extra or {})
        # The call's override (ours, or a copy of ours in front of a later node's that replaced the slot
        # without chaining, e.g. ModelAttentionBackend: its backend choice and the sharing both stay).
        transformer_options[OVERRIDE_KEY] = call.attention_override
        layout.owner = call.attention_override
        transformer_options[CALL_LAYOUT_KEY] = layout
        output = call.run_model(x, transformer_options)
        self._check_shared(layout)
        self._patch_reached.check(
            layout.reached_calls > 0,
            f"the {self.family.name} model ran without reaching StyleAligned's attention "
            f"override, so nothing was aligned. Another node after StyleAlignedPatch may have replaced the "
            f"attention override or the attention blocks; put StyleAlignedPatch last in the model chain.",
            required=active and bool(self.sharing.shared_blocks),
        )
        if self.held_reference is not None:
            output = self.held_reference.hold_output(output, batch)
        return output

    def _check_shared(self, layout: CallLayout) -> None:
        """Shared blocks were reached but their calls had a layout the pack does not understand: never a quiet
        unaligned set. None shared in this model call: an error; some: one warning per patch."""
        if layout.reached_calls == layout.shared_calls:
            return
        causes = ", ".join(sorted(layout.pass_causes)) or "its layout"
        family = self.family.name
        if layout.shared_calls == 0:
            raise StyleAlignedError(
                f"{NODE_NAME}: the {family} model reached {layout.reached_calls} attention calls of shared blocks but "
                f"StyleAligned could not read any of them ({causes} differ from what it expects for {family}), so "
                f"nothing would be aligned. Another node may change this model's attention layout; bypass "
                f"StyleAlignedPatch or that node."
            )
        if not self._warned_partial:
            self._warned_partial = True
            log.warning(
                "%s: on the %s model %d of %d attention calls of shared blocks were left unshared (%s differ from what "
                "StyleAligned expects); the images are aligned in the other blocks only.",
                NODE_NAME, family, layout.reached_calls - layout.shared_calls, layout.reached_calls, causes,
            )
