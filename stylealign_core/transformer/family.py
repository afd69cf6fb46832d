"""The interface a transformer family implements: one module per family under families/, both halves.

The core half says how the family's attention calls look (block keys, q/k/v format, block groups and
defaults); the host half reads the host's diffusion model (recognising it, counting its blocks, building
each model call's CallLayout from the model's own position helpers). The host half only duck-types the
model's attributes and names host modules as strings: no module of stylealign_core imports ComfyUI.
"""

from __future__ import annotations

import logging
from typing import Callable, Hashable, Optional

import torch

from ..batch_layout import BatchLayout
from .call_layout import CALL_LAYOUT_KEY, CallLayout

log = logging.getLogger(__name__)

BlockKey = tuple[str, int]  # (block group, index within the group), e.g. ("single", 12)

# AlignedGen's lambda (Zhang et al., NeurIPS 2025) on the reference's shared keys; families without a
# paper of their own carry it over.
ALIGNEDGEN_KEY_SCALE = 1.1


class TransformerFamily:
    """A transformer family. Subclass it in families/<module>.py and export the class as `FAMILY`.

    One instance per patch install: it may cache what it derives per image grid (RoPE tables). Clones of
    the patched model share it (as they share the attention override holding it).
    """

    # ---- identity ------------------------------------------------------------------------------------
    # For messages.
    name: str = "transformer"
    # The model names users know the family by (e.g. a model and its later versions): the node's description,
    # tooltips, the unsupported-model error, pyproject's description and the README list them.
    models: tuple[str, ...] = ()
    # The modules of the host's diffusion-model classes this family covers, as strings (never imported).
    host_modules: tuple[str, ...] = ()
    # The paper the defaults come from; "" = ours (no paper).
    defaults_from: str = ""

    # ---- core half -----------------------------------------------------------------------------------
    # Block groups in execution order: the node's transformer_blocks choice "double"/"single"/"all" and
    # "auto" (-> default_groups) select among them.
    groups: tuple[str, ...] = ("all",)
    default_groups: tuple[str, ...] = ("all",)
    # lambda on the appended reference keys when the node says "auto".
    default_key_scale: float = 1.0
    # The RoPE id axis that runs along the image width (the position shift moves the reference's keys by
    # the image's extent along it); None: no RoPE, so no shift.
    width_axis: Optional[int] = None
    # Whether the host calls the DiT attn1 patch inside this family's blocks before RoPE (ComfyUI 0.33 does
    # for some families), so AdaIN can happen there; hosts without the hook never call it (pre_rope_patch.py).
    # Only for families whose blocks are tagged in transformer_options.
    uses_pre_rope_hook: bool = False

    def __init__(self) -> None:
        self._cache: dict = {}

    def __deepcopy__(self, memo):
        return self  # ModelPatcher.clone deep-copies model_options: clones share the one instance

    def block_key(self, transformer_options: dict, call_index: int) -> Optional[BlockKey]:
        """Which block this attention call belongs to; None: a call the family does not share (it passes
        through unchanged). call_index counts the attention calls of this model call (0-based), for
        families that tag nothing in transformer_options."""
        raise NotImplementedError

    def heads_first(self, args: tuple, kwargs: dict) -> Optional[tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]]:
        """(q, k, v, heads) with q/k/v as (B, H, L, D) from a backend call, or None to pass it through.

        Default: the host's two standard formats, (B, H, L, D) with skip_reshape=True or (B, L, H*D).
        A family whose tensors arrive otherwise (e.g. v as (B, L, H, D)) overrides this.
        """
        if len(args) == 5 and args[4] is None:  # an empty mask slot passed by position
            args = args[:4]
        if len(args) < 3 or len(args) > 4:  # more positionals (a mask passed by position): leave it alone
            return None
        q, k, v = args[:3]
        heads = args[3] if len(args) > 3 else kwargs.get("heads")
        if heads is None or not all(torch.is_tensor(t) for t in (q, k, v)):
            return None
        if kwargs.get("skip_reshape", False):
            return (q, k, v, heads) if q.dim() == 4 and k.dim() == 4 and v.dim() == 4 else None
        if q.dim() != 3 or k.dim() != 3 or v.dim() != 3:
            return None
        return tuple(_split_heads(t, heads) for t in (q, k, v)) + (heads,)

    # ---- host half (duck-typed: reads attributes of the host's model, imports nothing of the host) ----
    @classmethod
    def recognises(cls, diffusion_model) -> bool:
        """Whether this family covers the host's diffusion model (default: by its class's module)."""
        return type(diffusion_model).__module__ in cls.host_modules

    def block_counts(self, diffusion_model) -> dict[str, int]:
        """Blocks per group of this model, e.g. {"double": 19, "single": 38}."""
        raise NotImplementedError

    def call_layout(
        self, diffusion_model, batch: BatchLayout, active: bool, x: torch.Tensor, c_crossattn,
        transformer_options: dict, kwargs: dict,
    ) -> CallLayout:
        """The CallLayout of one model call (the model-call wrapper's arguments): token ranges from the
        call's own tensors, rotations from the model's own embedder. Raises StyleAlignedError naming the
        node and the cause for an input the family cannot patch."""
        raise NotImplementedError

    def cached(self, key: Hashable, make: Callable):
        """make() once per key for this instance (e.g. RoPE tables per image grid: the same every step)."""
        value = self._cache.get(key)
        if value is None:
            value = self._cache[key] = make()
        return value


class TaggedBlocksFamily(TransformerFamily):
    """A family whose blocks tag themselves in transformer_options (block_type in groups, block_index)."""

    uses_pre_rope_hook = True

    def block_key(self, transformer_options: dict, call_index: int) -> Optional[BlockKey]:
        block_type = transformer_options.get("block_type")
        if block_type not in self.groups:
            return None
        return (block_type, int(transformer_options.get("block_index", 0)))


class PlannedBlocksFamily(TransformerFamily):
    """A family whose blocks tag nothing in transformer_options: its call_layout lists the model call's
    attention calls in order (CallLayout.call_plan) and the block is read from there by call_index."""

    _warned_extra_calls = False

    def block_key(self, transformer_options: dict, call_index: int) -> Optional[BlockKey]:
        layout = transformer_options.get(CALL_LAYOUT_KEY)
        if layout is None:
            return None
        if layout.call_plan is not None and call_index == len(layout.call_plan) and not self._warned_extra_calls:
            log.warning("StyleAlignedPatch: the %s model made more attention calls than its blocks explain (another "
                        "node adds attention?); the extra calls are left unchanged.", self.name)
            self._warned_extra_calls = True
        return layout.planned_block(call_index)


def _split_heads(t: torch.Tensor, heads: int) -> torch.Tensor:
    batch, tokens, width = t.shape
    return t.view(batch, tokens, heads, width // heads).transpose(1, 2)


def latent_grid(x: torch.Tensor, patch: int) -> tuple[int, int]:
    """Image tokens along height and width after the model pads the latent to its patch size."""
    return -(-x.shape[-2] // patch), -(-x.shape[-1] // patch)
