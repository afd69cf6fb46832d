"""The transformer route's model-call wrapper (ComfyUI's APPLY_MODEL wrapper contract): once per call.

It checks the batch against the reference slot before the model runs (a bad reference_index or a batch
of one is an error naming the node), asks the family's host glue for the call's CallLayout, hands it to
the attention override through a copy of transformer_options (putting the override back in front of a
later node's that replaced it without chaining, override_chain.py), and afterwards checks that the
override was reached when it should have been: another node replacing the attention blocks must not
silently give unaligned images. Only until the first call that reached it: step-caching packs (TeaCache,
first-block caches) legitimately skip the blocks on some later steps.
With a real-image reference it holds the reference slot on the inverted trajectory exactly as the UNet
route does (HeldReference.hold_input / hold_output, shared by both routes).
"""

from __future__ import annotations

import logging
from typing import Callable, Optional

from ..batch_layout import NODE_NAME, BatchLayout, batch_layout
from ..errors import StyleAlignedError
from ..options import StyleAlignedOptions
from ..override_chain import OVERRIDE_KEY, override_for_call
from ..real_image.reference_trajectory import HeldReference
from .attention_override import SharedAttentionOverride
from .call_layout import CALL_LAYOUT_KEY, CallLayout

# build_layout(diffusion_model, batch, active, x, c_crossattn, transformer_options, kwargs) -> CallLayout
LayoutBuilder = Callable[..., CallLayout]

log = logging.getLogger(__name__)


class TransformerModelCall:
    def __init__(
        self,
        options: StyleAlignedOptions,
        build_layout: LayoutBuilder,
        override: SharedAttentionOverride,
        held_reference: Optional[HeldReference] = None,
        attn1_patch=None,
    ):
        # What nodes/patch_set.py removes when a later StyleAlignedPatch replaces this patch set: the
        # pre-RoPE AdaIN patch (pre_rope_patch.py) where the family has one.
        self.attn1_patch = attn1_patch
        self.options = options
        self.build_layout = build_layout
        self.override = override
        self.held_reference = held_reference
        self._reached_once = False
        self._warned_partial = False

    @property
    def attention_override(self) -> SharedAttentionOverride:
        return self.override

    def __call__(self, executor, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options=None, **kwargs):
        transformer_options = dict(transformer_options or {})
        batch: BatchLayout = batch_layout(
            x.shape[0], transformer_options.get("cond_or_uncond"), self.options.reference_index, self.held_reference is not None,
            self.options.references,
        )
        if self.held_reference is not None:
            x = self.held_reference.hold_input(x, t, batch)
        active = self.options.sigma_is_active(float(t.max()))
        layout = self.build_layout(executor.class_obj.diffusion_model, batch, active, x, c_crossattn, transformer_options, kwargs)
        # A later node that replaced the override slot without chaining (ModelAttentionBackend) gets ours
        # put in front of it for this call: its backend choice and the sharing both stay.
        override = override_for_call(self.override, transformer_options)
        transformer_options[OVERRIDE_KEY] = override
        layout.owner = override
        transformer_options[CALL_LAYOUT_KEY] = layout
        output = executor(x, t, c_concat, c_crossattn, control, transformer_options, **kwargs)
        self._check_shared(layout)
        self._reached_once = self._reached_once or layout.reached_calls > 0
        if active and self.override.sharing.shared_blocks and not self._reached_once:
            raise StyleAlignedError(
                f"{NODE_NAME}: the {self.override.family.name} model ran without reaching StyleAligned's attention "
                f"override, so nothing was aligned. Another node after StyleAlignedPatch may have replaced the "
                f"attention override or the attention blocks; put StyleAlignedPatch last in the model chain."
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
        family = self.override.family.name
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
