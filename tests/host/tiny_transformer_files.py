"""Model files for the transformer (DiT) workflows on the real server: stand-ins laid out like the real ones.

The shipped Flux.1 dev, Qwen-Image and Z-Image workflows load their parts with the host's own loaders
(UNETLoader, DualCLIPLoader/CLIPLoader, VAELoader). For the end-to-end tests these files are written once,
with random weights, into the git-ignored `.cache/models/` (names carry a format version; atomic writes):

- diffusion models (`models/diffusion_models`) that the host's detection (comfy/model_detection.py) reads
  back as Flux (`supported_models.Flux`, guidance embedding), Qwen-Image (`QwenImage`) and Z-Image (`ZImage`),
  cut down to ONE block per block list. Their widths cannot be reduced: the detection fixes them (Flux: 24
  heads × 128 = 3072; Qwen-Image: the model's default 24 × 128; Z-Image is recognised only at dim 3840, with
  2 noise- and 2 context-refiner blocks), so the files are ~1.1, ~0.8 and ~1.8 GB of float16;
- the Flux VAE (`ae`), full size (the loader fixes its layout; ~160 MB), also Z-Image's VAE as in its template;
- the Qwen-Image VAE (Wan 2.1 layout) at the smallest base width the loader accepts for it (it reads the width
  from the file): 16 instead of 96;
- CLIP-L as a text-encoder file (`models/text_encoders`), full size (its layout is fixed; ~250 MB), for the
  Flux workflow's DualCLIPLoader.

The big text encoders (T5-XXL, Qwen2.5-VL 7B, Qwen3 4B) cannot be built here; the tests swap in
tests/host/standin_text_encoders (a test-only node pack) for their loaders only.

Weights: one seed per file, keys in sorted order; matrices ~ N(0, 1/fan_in), norm scales 1, biases small.
The pictures are noise; the files only serve plumbing, shapes and equalities.

    python tests/host/tiny_transformer_files.py            # build if missing, verify with the host's loaders
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent

if __package__:
    from .random_tensors import float16_tensors, random_values, write_safetensors
    from .tiny_checkpoint import MODELS_DIR, REPO_ROOT, SEED, _import_host, _LogCollector, _shapes as _sd15_shapes
else:  # run as a script: import the helpers as the `host` package; tests/host itself must not shadow ComfyUI's modules
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
    sys.path.insert(0, str(HERE.parent))
    from host.random_tensors import float16_tensors, random_values, write_safetensors
    from host.tiny_checkpoint import MODELS_DIR, REPO_ROOT, SEED, _import_host, _LogCollector, _shapes as _sd15_shapes

FORMAT_VERSION = 1

FLUX_UNET_NAME = f"stylealigned-tiny-flux1-dev-v{FORMAT_VERSION}.safetensors"
QWEN_IMAGE_UNET_NAME = f"stylealigned-tiny-qwen-image-v{FORMAT_VERSION}.safetensors"
Z_IMAGE_UNET_NAME = f"stylealigned-tiny-z-image-v{FORMAT_VERSION}.safetensors"
FLUX_VAE_NAME = f"stylealigned-random-flux-ae-v{FORMAT_VERSION}.safetensors"
QWEN_IMAGE_VAE_NAME = f"stylealigned-tiny-wan21-vae-v{FORMAT_VERSION}.safetensors"
CLIP_L_NAME = f"stylealigned-random-clip-l-v{FORMAT_VERSION}.safetensors"

# file name -> the ComfyUI model folder it goes in
FILES = {
    FLUX_UNET_NAME: "diffusion_models",
    QWEN_IMAGE_UNET_NAME: "diffusion_models",
    Z_IMAGE_UNET_NAME: "diffusion_models",
    FLUX_VAE_NAME: "vae",
    QWEN_IMAGE_VAE_NAME: "vae",
    CLIP_L_NAME: "text_encoders",
}

# What comfy/model_detection.py reads back from these files (and what each constructor needs).
FLUX_CONFIG = dict(image_model="flux", in_channels=16, out_channels=16, vec_in_dim=768, context_in_dim=4096,
                   hidden_size=3072, mlp_ratio=4.0, num_heads=24, depth=1, depth_single_blocks=1, axes_dim=[16, 56, 56],
                   theta=10000, qkv_bias=True, guidance_embed=True, patch_size=2)
QWEN_IMAGE_CONFIG = dict(image_model="qwen_image", in_channels=64, num_layers=1)
Z_IMAGE_CONFIG = dict(image_model="lumina2", patch_size=2, in_channels=16, dim=3840, cap_feat_dim=2560, n_layers=1,
                      qk_norm=True, n_heads=30, n_kv_heads=30, axes_dims=[32, 48, 48], axes_lens=[1536, 512, 512],
                      rope_theta=256.0, ffn_dim_multiplier=8.0 / 3.0, z_image_modulation=True, time_scale=1000.0,
                      pad_tokens_multiple=32)
WAN21_VAE_DIM = 16  # the real Qwen-Image VAE has 96
FLUX_VAE_DDCONFIG = {"double_z": True, "z_channels": 16, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
                     "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0}


@dataclass(frozen=True)
class TransformerFiles:
    """Paths of the files by name (FILES gives each one's model folder)."""
    paths: dict

    def in_folder(self, folder: str) -> dict:
        return {name: path for name, path in self.paths.items() if FILES[name] == folder}


def transformer_file_paths(models_dir: Path = MODELS_DIR) -> TransformerFiles:
    return TransformerFiles({name: Path(models_dir) / name for name in FILES})


def ensure_transformer_files(models_dir: Path = MODELS_DIR, timeout_s: float = 900.0) -> TransformerFiles:
    """The files' paths, building the missing ones first (in a child process: it imports ComfyUI)."""
    files = transformer_file_paths(models_dir)
    if all(path.is_file() for path in files.paths.values()):
        return files
    subprocess.run([sys.executable, str(Path(__file__).resolve()), "--models-dir", str(models_dir), "--no-verify"],
                   check=True, timeout=timeout_s, cwd=str(REPO_ROOT))
    missing = [str(path) for path in files.paths.values() if not path.is_file()]
    if missing:
        raise RuntimeError(f"building the transformer stand-in files did not produce {missing}")
    return files


# ---------------------------------------------------------------------------------------------------------
# Everything below runs in the child process (or when this file is run as a script): it imports ComfyUI.

def _shapes_of(module) -> dict:
    return {key: tuple(value.shape) for key, value in module.state_dict().items()}


def _shapes(name: str) -> dict:
    import torch

    import comfy.ops

    ops = comfy.ops.disable_weight_init
    with torch.device("meta"):
        if name == FLUX_UNET_NAME:
            from comfy.ldm.flux.model import Flux
            return _shapes_of(Flux(operations=ops, **FLUX_CONFIG))
        if name == QWEN_IMAGE_UNET_NAME:
            from comfy.ldm.qwen_image.model import QwenImageTransformer2DModel
            return _shapes_of(QwenImageTransformer2DModel(operations=ops, **QWEN_IMAGE_CONFIG))
        if name == Z_IMAGE_UNET_NAME:
            from comfy.ldm.lumina.model import NextDiT
            return _shapes_of(NextDiT(operations=ops, **Z_IMAGE_CONFIG))
        if name == FLUX_VAE_NAME:
            from comfy.ldm.models.autoencoder import AutoencoderKL
            return _shapes_of(AutoencoderKL(ddconfig=dict(FLUX_VAE_DDCONFIG), embed_dim=16))
        if name == QWEN_IMAGE_VAE_NAME:
            from comfy.ldm.wan.vae import WanVAE
            return _shapes_of(WanVAE(dim=WAN21_VAE_DIM, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                                     temperal_downsample=[False, True, True], dropout=0.0))
    if name == CLIP_L_NAME:  # the checkpoint's CLIP-L, as a text-encoder file holds it (keys text_model.*)
        checkpoint, _ = _sd15_shapes()
        prefix = "cond_stage_model.transformer."
        return {key[len(prefix):]: shape for key, shape in checkpoint.items() if key.startswith(prefix)}
    raise KeyError(name)


def _is_norm_scale(key: str, shape: tuple) -> bool:
    """Norm scales: 1-D weight/scale and RMS gammas."""
    leaf = key.rsplit(".", 1)[-1]
    return leaf == "gamma" or (len(shape) == 1 and leaf in ("weight", "scale"))


def _is_matrix(shape: tuple) -> bool:
    return len(shape) >= 2 and math.prod(shape[1:]) > 1


def _random_tensors(shapes: dict, seed: int) -> dict:
    """Deterministic float16 tensors: matrices ~ N(0, 1/fan_in); norm scales (1-D weight/scale, RMS gammas) 1;
    other 1-D tensors (biases) small."""
    return float16_tensors(random_values(shapes, seed, _is_norm_scale, _is_matrix))


def _write_atomically(tensors: dict, path: Path, kind: str) -> None:
    note = f"{kind}, format v{FORMAT_VERSION}: random weights for tests, the outputs are noise"
    write_safetensors(tensors, path, {"stylealigned_test_model": note})


def build_transformer_files(models_dir: Path = MODELS_DIR, force: bool = False) -> TransformerFiles:
    _import_host()
    files = transformer_file_paths(models_dir)
    for offset, (name, path) in enumerate(sorted(files.paths.items())):
        if path.is_file() and not force:
            continue
        _write_atomically(_random_tensors(_shapes(name), SEED + 100 + offset), path, name.rsplit("-v", 1)[0])
    return files


def verify_transformer_files(files: TransformerFiles) -> None:
    """Load each file with the host's own loader; the right model class, no missing keys, finite outputs."""
    _import_host()
    import logging

    import torch

    import comfy.sd
    import comfy.supported_models
    import comfy.utils

    collector = _LogCollector()
    logging.getLogger().addHandler(collector)
    try:
        for name, expected in ((FLUX_UNET_NAME, comfy.supported_models.Flux), (QWEN_IMAGE_UNET_NAME, comfy.supported_models.QwenImage),
                               (Z_IMAGE_UNET_NAME, comfy.supported_models.ZImage)):
            model = comfy.sd.load_diffusion_model(str(files.paths[name]))
            if type(model.model.model_config) is not expected:
                raise AssertionError(f"{name} was detected as {type(model.model.model_config).__name__}, not {expected.__name__}")
        for name, channels in ((FLUX_VAE_NAME, 16), (QWEN_IMAGE_VAE_NAME, 16)):
            vae = comfy.sd.VAE(sd=comfy.utils.load_torch_file(str(files.paths[name])))
            latent = torch.randn((1, channels, 8, 8) if vae.latent_dim == 2 else (1, channels, 1, 8, 8))
            image = vae.decode(latent)
            if image.shape[-3:-1] != (64, 64) or not torch.isfinite(image).all():
                raise AssertionError(f"{name}: decoded {tuple(image.shape)}")
    finally:
        logging.getLogger().removeHandler(collector)
    problems = [m for m in collector.messages if "missing" in m.lower() or "unexpected" in m.lower()]
    if problems:
        raise AssertionError(f"loading the files logged: {problems}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--no-verify", action="store_true")
    options = parser.parse_args(argv)
    started = time.monotonic()
    files = build_transformer_files(options.models_dir, force=options.force)
    built = time.monotonic()
    if not options.no_verify:
        verify_transformer_files(files)
    for path in files.paths.values():
        print(f"{path}  ({path.stat().st_size / 2**20:.0f} MiB)")
    print(f"built/found in {built - started:.1f} s" + ("" if options.no_verify else f", verified in {time.monotonic() - built:.1f} s"),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
