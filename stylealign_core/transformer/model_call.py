"""The transformer route's model-call wrapper (ComfyUI's APPLY_MODEL wrapper contract): once per call.

It checks the batch against the reference slot before the model runs (a bad reference_index or a batch
of one is an error naming the node), asks the family's host glue for the call's CallLayout, hands it to
the attention override through a copy of transformer_options, and afterwards checks that the override
actually shared something when it should have (another node replacing the override without chaining
must not silently give unaligned images).
"""

from __future__ import annotations

from typing import Callable

from ..batch_layout import NODE_NAME, BatchLayout, batch_layout
from ..errors import StyleAlignedError
from ..options import StyleAlignedOptions
from .attention_override import SharedAttentionOverride
from .call_layout import CALL_LAYOUT_KEY, CallLayout

# build_layout(diffusion_model, batch, active, x, c_crossattn, transformer_options, kwargs) -> CallLayout
LayoutBuilder = Callable[..., CallLayout]


class TransformerModelCall:
    def __init__(self, options: StyleAlignedOptions, build_layout: LayoutBuilder, override: SharedAttentionOverride):
        self.options = options
        self.build_layout = build_layout
        self.override = override

    def __call__(self, executor, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options=None, **kwargs):
        transformer_options = dict(transformer_options or {})
        batch: BatchLayout = batch_layout(x.shape[0], transformer_options.get("cond_or_uncond"), self.options.reference_index)
        active = self.options.sigma_is_active(float(t.max()))
        layout = self.build_layout(executor.class_obj.diffusion_model, batch, active, x, c_crossattn, transformer_options, kwargs)
        transformer_options[CALL_LAYOUT_KEY] = layout
        output = executor(x, t, c_concat, c_crossattn, control, transformer_options, **kwargs)
        if active and layout.call_plan is not None and layout.attention_calls != len(layout.call_plan):
            # Blocks recognised by counting: another count means the calls were attributed to the wrong
            # blocks or token ranges, so the result cannot be trusted.
            raise StyleAlignedError(
                f"{NODE_NAME}: the {self.override.family.name} model made {layout.attention_calls} attention calls "
                f"where {len(layout.call_plan)} were expected; another node may add, skip or replace attention "
                f"blocks. Put StyleAlignedPatch last in the model chain or bypass the node with that node."
            )
        if active and self.override.sharing.shared_blocks and layout.reached_calls == 0:
            raise StyleAlignedError(
                f"{NODE_NAME}: the {self.override.family.name} model ran without reaching StyleAligned's attention "
                f"override, so nothing was aligned. Another node after StyleAlignedPatch may have replaced the "
                f"attention override or the attention blocks; put StyleAlignedPatch last in the model chain."
            )
        return output
