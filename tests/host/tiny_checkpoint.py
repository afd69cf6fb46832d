"""Tiny random models laid out like the real ones, for tests that run the real ComfyUI server.

No model weights can be downloaded on the test machines, so the end-to-end tests use:

- a checkpoint laid out like SD1.5 (original LDM key names: `model.diffusion_model.*`,
  `cond_stage_model.transformer.text_model.*`, `first_stage_model.*`) that the host's
  CheckpointLoaderSimple detects as SD15. Its UNet is cut down to what the detection still accepts as
  SD1.5: 320 model channels, 768 context, conv (not linear) transformer projections, a single resolution
  level (`channel_mult [1]`, one res block, a transformer in every block and in the middle block). CLIP-L
  and the VAE are full size because their layouts are fixed by the loader. ~450 MiB of float16.
- a ControlNet built like that UNet (same detection keys, `hint_channels` 3, ~30 MiB) that ControlNetLoader
  loads and ControlNetApplyAdvanced runs.

Weights are random but deterministic (one seed, keys in sorted order; the files are byte-identical from
one build to the next) and scaled so that activations stay
in a sane range: matrices and convolutions ~ N(0, 1/fan_in), norm scales 1, biases small. The pictures these
models make are structured noise; they are only good for checking plumbing, shapes and equalities.

The files are written once into the git-ignored `.cache/models/` (names carry a format version, so a
change here writes new files) and reused. Building imports ComfyUI's own model classes to get the exact
key names and shapes, in a child process, so that importing this module never imports `comfy`.

    python tests/host/tiny_checkpoint.py            # build if missing, verify with the host's loaders, print paths
    python tests/host/tiny_checkpoint.py --force    # rebuild
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
MODELS_DIR = REPO_ROOT / ".cache" / "models"

if __package__:
    from .fetch_comfyui import comfyui_path
    from .random_tensors import float16_tensors, random_values, write_safetensors
else:  # run as a script: import the helpers as the `host` package; tests/host itself must not shadow ComfyUI's modules
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
    sys.path.insert(0, str(HERE.parent))
    from host.fetch_comfyui import comfyui_path
    from host.random_tensors import float16_tensors, random_values, write_safetensors

FORMAT_VERSION = 1
SEED = 20240617
TINY_CHECKPOINT_NAME = f"stylealigned-tiny-sd15-v{FORMAT_VERSION}.safetensors"
TINY_CONTROLNET_NAME = f"stylealigned-tiny-sd15-controlnet-v{FORMAT_VERSION}.safetensors"

# The UNet as ComfyUI's detection (comfy/model_detection.py detect_unet_config) reads it back from the keys,
# plus SD15's unet_extra_config (8 heads). model_channels 320, context 768 and conv projections make it SD15.
TINY_UNET_CONFIG = {
    "image_size": 32,
    "in_channels": 4,
    "out_channels": 4,
    "model_channels": 320,
    "num_res_blocks": [1],
    "channel_mult": [1],
    "transformer_depth": [1],
    "transformer_depth_output": [1, 1],
    "transformer_depth_middle": 1,
    "context_dim": 768,
    "num_heads": 8,
    "num_head_channels": -1,
    "use_linear_in_transformer": False,
    "use_spatial_transformer": True,
    "legacy": False,
    "use_temporal_attention": False,
    "use_temporal_resblock": False,
    "adm_in_channels": None,
}
# The SD1.x/SD2.x VAE (comfy/sd.py VAE.__init__, "default SD1.x/SD2.x VAE parameters").
SD_VAE_DDCONFIG = {
    "double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
    "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0,
}


@dataclass(frozen=True)
class TinyModels:
    checkpoint: Path
    controlnet: Path


def tiny_model_paths(models_dir: Path = MODELS_DIR) -> TinyModels:
    """Where the tiny models live (whether or not they exist yet)."""
    return TinyModels(models_dir / TINY_CHECKPOINT_NAME, models_dir / TINY_CONTROLNET_NAME)


def ensure_tiny_models(models_dir: Path = MODELS_DIR, timeout_s: float = 600.0) -> TinyModels:
    """Return the tiny models' paths, building them first (in a child process) when missing."""
    paths = tiny_model_paths(models_dir)
    if paths.checkpoint.is_file() and paths.controlnet.is_file():
        return paths
    subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--models-dir", str(models_dir), "--no-verify"],
        check=True, timeout=timeout_s, cwd=str(REPO_ROOT),
    )
    if not (paths.checkpoint.is_file() and paths.controlnet.is_file()):
        raise RuntimeError(f"building the tiny models did not produce {paths}")
    return paths


def tiny_checkpoint_path() -> Path:
    """The tiny SD1.5-layout checkpoint (built on first use)."""
    return ensure_tiny_models().checkpoint


def tiny_controlnet_path() -> Path:
    """The tiny SD1.5-layout ControlNet (built on first use)."""
    return ensure_tiny_models().controlnet


# ---------------------------------------------------------------------------------------------------------
# Everything below runs in the child process (or when this file is run as a script): it imports ComfyUI.

def _import_host():
    root = str(comfyui_path())
    if root not in sys.path:
        sys.path.insert(0, root)
    from comfy.cli_args import args

    args.cpu = True  # must be set before comfy.model_management is imported: no GPU is assumed
    return root


def _shapes():
    """Key → shape of the three checkpoint parts and the ControlNet, from ComfyUI's own classes on `meta`."""
    import torch
    from comfy.cldm.cldm import ControlNet
    from comfy.ldm.models.autoencoder import AutoencoderKL
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    from comfy.sd1_clip import SDClipModel

    control_config = {k: v for k, v in TINY_UNET_CONFIG.items()
                      if k not in ("out_channels", "transformer_depth_output", "use_temporal_attention", "use_temporal_resblock")}
    with torch.device("meta"):
        unet = UNetModel(**TINY_UNET_CONFIG)
        controlnet = ControlNet(hint_channels=3, **control_config)
        clip = SDClipModel(device="meta")
        vae = AutoencoderKL(ddconfig=dict(SD_VAE_DDCONFIG), embed_dim=4)

    def shapes(module, prefix, skip=()):
        return {prefix + k: tuple(v.shape) for k, v in module.state_dict().items() if k not in skip}

    checkpoint = {}
    checkpoint.update(shapes(unet, "model.diffusion_model."))
    # A real SD1.5 file has neither a text projection nor a logit scale for CLIP-L (see SD15.process_clip_state_dict_for_saving).
    checkpoint.update(shapes(clip, "cond_stage_model.", skip=("logit_scale", "transformer.text_projection.weight")))
    checkpoint.update(shapes(vae, "first_stage_model."))
    return checkpoint, shapes(controlnet, "")


def _is_norm_scale(key: str, shape: tuple) -> bool:
    return len(shape) < 2 and key.endswith(".weight")  # LayerNorm, GroupNorm: the only 1-D weights in these models


def _random_tensors(shapes: dict, seed: int):
    """Deterministic random float16 tensors; keys in sorted order, one generator."""
    return float16_tensors(random_values(shapes, seed, _is_norm_scale))


def _write_atomically(tensors: dict, path: Path, kind: str) -> None:
    note = f"{kind}, format v{FORMAT_VERSION}, seed {SEED}: random weights for tests, the outputs are noise"
    write_safetensors(tensors, path, {"stylealigned_tiny_model": note})


def build_tiny_models(models_dir: Path = MODELS_DIR, force: bool = False) -> TinyModels:
    """Write the tiny checkpoint and ControlNet (in this process: imports ComfyUI)."""
    _import_host()
    paths = tiny_model_paths(models_dir)
    if not force and paths.checkpoint.is_file() and paths.controlnet.is_file():
        return paths
    checkpoint_shapes, controlnet_shapes = _shapes()
    _write_atomically(_random_tensors(checkpoint_shapes, SEED), paths.checkpoint, "sd15-checkpoint")
    _write_atomically(_random_tensors(controlnet_shapes, SEED + 1), paths.controlnet, "sd15-controlnet")
    return paths


class _LogCollector(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def verify_tiny_models(paths: TinyModels) -> None:
    """Load both files with the host's own loaders and run them once; raise if anything is off."""
    _import_host()
    import torch

    import comfy.controlnet
    import comfy.sd
    import comfy.supported_models

    collector = _LogCollector()
    logging.getLogger().addHandler(collector)
    try:
        model, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(
            str(paths.checkpoint), output_vae=True, output_clip=True, embedding_directory=None)
        control = comfy.controlnet.load_controlnet(str(paths.controlnet))
    finally:
        logging.getLogger().removeHandler(collector)
    config = model.model.model_config
    if type(config) is not comfy.supported_models.SD15:
        raise AssertionError(f"the tiny checkpoint was detected as {type(config).__name__}, not SD15")
    if control is None:
        raise AssertionError("ControlNetLoader's loader did not recognise the tiny ControlNet")
    problems = [m for m in collector.messages if "missing" in m.lower() or "unexpected" in m.lower() or "error" in m.lower()]
    if problems:
        raise AssertionError(f"loading the tiny models logged: {problems}")

    # One tiny pass through each part: finite outputs of the right shapes.
    tokens = clip.tokenize("a photo of a cat")
    cond, pooled = clip.encode_from_tokens(tokens, return_pooled=True)
    if tuple(cond.shape) != (1, 77, 768) or not torch.isfinite(cond).all():
        raise AssertionError(f"CLIP output {tuple(cond.shape)} finite={bool(torch.isfinite(cond).all())}")
    latent = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        eps = model.model.apply_model(latent, torch.tensor([10.0, 10.0]), c_crossattn=cond.repeat(2, 1, 1))
    if tuple(eps.shape) != (2, 4, 8, 8) or not torch.isfinite(eps).all():
        raise AssertionError(f"UNet output {tuple(eps.shape)} finite={bool(torch.isfinite(eps).all())}")
    with torch.no_grad():
        images = vae.decode(latent)
    if tuple(images.shape) != (2, 64, 64, 3) or not torch.isfinite(images).all() or float(images.std()) < 0.02:
        raise AssertionError(f"VAE output {tuple(images.shape)} std={float(images.std()):.4f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    parser.add_argument("--force", action="store_true", help="rebuild even when the files exist")
    parser.add_argument("--no-verify", action="store_true", help="skip loading the files with the host's loaders")
    options = parser.parse_args(argv)
    started = time.monotonic()
    paths = build_tiny_models(options.models_dir, force=options.force)
    built = time.monotonic()
    if not options.no_verify:
        verify_tiny_models(paths)
    for path in (paths.checkpoint, paths.controlnet):
        print(f"{path}  ({path.stat().st_size / 2**20:.0f} MiB)")
    print(f"built/found in {built - started:.1f} s" + ("" if options.no_verify else f", verified in {time.monotonic() - built:.1f} s"),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
