"""One call of the host's diffusion model, as both routes' model calls take it.

The host adapter (nodes/patch_set.py, an APPLY_MODEL wrapper) builds it from the host's wrapper arguments;
the UNet route (unet/model_call.py) and the transformer route (transformer/model_call.py) read what they
need and run the rest of the model through `run_model`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch


@dataclass(frozen=True)
class ModelCallInputs:
    x: torch.Tensor
    timestep: torch.Tensor
    # The call's transformer_options; the adapter has already put the pack's attention override in front of
    # a later node's that replaced the slot without chaining (override_chain.py).
    transformer_options: dict
    # run_model(x, transformer_options): the rest of the model (every later wrapper, then the model itself).
    run_model: Callable[[torch.Tensor, dict], torch.Tensor]
    # The override that carries the pack into this call: the pack's own, or a copy chaining the slot's.
    attention_override: Optional[Callable] = None
    c_crossattn: Optional[torch.Tensor] = None
    # The host's diffusion model and its other model-call keyword arguments (the transformer route reads
    # positions off the model).
    diffusion_model: Any = None
    extra: Optional[dict] = None
