"""Run the pack's nodes and the host's real sampler on tiny models."""

from __future__ import annotations

import torch

from .comfy_env import host_node_class, load_host


def node_defaults(node_id: str) -> dict:
    schema = host_node_class(node_id).define_schema()
    return {item.id: item.default for item in schema.inputs if getattr(item, "default", None) is not None}


def node_output(node_id: str, **inputs):
    """Execute a V3 node with its schema defaults for every input not given; returns its NodeOutput."""
    values = node_defaults(node_id)
    values.update(inputs)
    return host_node_class(node_id).execute(**values)


def run_node(node_id: str, **inputs):
    return node_output(node_id, **inputs).result


def style_aligned(model, **inputs):
    return run_node("StyleAlignedPatch", model=model, **inputs)[0]


def seeded_noise(batch: int, seed: int = 0, size: int = 8) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 4, size, size, generator=generator)


def sample(model, noise, positive, negative, cfg=3.0, steps=4, sampler="euler", scheduler="normal", seed=0):
    """The host's comfy.sample.sample (what KSampler runs), from pure noise."""
    load_host()
    import comfy.sample

    latent = torch.zeros_like(noise)
    return comfy.sample.sample(
        model, noise, steps, cfg, sampler, scheduler, positive, negative, latent, seed=seed, disable_pbar=True
    )


def split_chunk_wrapper(calls):
    """Emulates the host under memory pressure: every conditioning chunk in a model call of its own."""

    def wrapper(apply_model, args):
        x, t, c, chunks = args["input"], args["timestep"], args["c"], args["cond_or_uncond"]
        rows = x.shape[0] // len(chunks)
        outputs = []
        for i, chunk in enumerate(chunks):
            part = slice(i * rows, (i + 1) * rows)
            c_part = {key: value[part] if torch.is_tensor(value) and value.shape[0] == x.shape[0] else value for key, value in c.items()}
            c_part["transformer_options"] = dict(c["transformer_options"], cond_or_uncond=[chunk])
            calls.append(len(c_part["transformer_options"]["cond_or_uncond"]))
            outputs.append(apply_model(x[part], t[part], **c_part))
        return torch.cat(outputs)

    return wrapper
