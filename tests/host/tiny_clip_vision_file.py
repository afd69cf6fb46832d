"""A CLIP vision model file the real server's CLIPVisionLoader loads, with random weights, for the
end-to-end tests of StyleAlignedSetScore.

Stand-in: the loader (comfy/clip_vision.py load_clipvision_from_sd) picks a fixed, full-size config from
key names alone, so no smaller file loads. The smallest it accepts is a CLIP ViT-L/14 vision tower at 224
pixels (Hugging Face key names, `vision_model.*` + `visual_projection.weight`, 257 positions → 
clip_vision_config_vitl.json: 24 layers of width 1024, 768-wide image_embeds, ~304 M parameters, ~580 MiB of
float16). It stands in for the DINOv2-large file the shipped workflow names (dino2_large.json works at 518
pixels: ~5× the compute per image). Random weights (tiny_checkpoint's scheme: deterministic, N(0, 1/fan_in)
matrices, norm scales ≈ 1): the embeddings, and so the scores, say nothing about style; the tests check the
plumbing and exact properties (identical images score 1, a set of one image is refused).

Written once into the git-ignored `.cache/models/` (atomic write, a versioned name of its own), in a child
process so that importing this module never imports `comfy`:

    python tests/host/tiny_clip_vision_file.py     # build if missing, load it with the host's loader, print the path
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if __package__:
    from .tiny_checkpoint import MODELS_DIR, REPO_ROOT, SEED, _import_host, _random_tensors, _write_atomically
else:  # run as a script: import the helpers as the `host` package; tests/host itself must not shadow ComfyUI's modules
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
    sys.path.insert(0, str(HERE.parent))
    from host.tiny_checkpoint import MODELS_DIR, REPO_ROOT, SEED, _import_host, _random_tensors, _write_atomically

CLIP_VISION_FORMAT_VERSION = 1
RANDOM_CLIP_VISION_NAME = f"stylealigned-random-clip-vision-vitl-v{CLIP_VISION_FORMAT_VERSION}.safetensors"
HOST_CONFIG = "clip_vision_config_vitl.json"  # what the loader picks for this file


def random_clip_vision_path(models_dir: Path = MODELS_DIR) -> Path:
    return models_dir / RANDOM_CLIP_VISION_NAME


def ensure_random_clip_vision(models_dir: Path = MODELS_DIR, timeout_s: float = 600.0) -> Path:
    """The file's path, building it first (in a child process) when missing."""
    path = random_clip_vision_path(models_dir)
    if not path.is_file():
        subprocess.run([sys.executable, str(Path(__file__).resolve()), "--models-dir", str(models_dir), "--no-verify"],
                       check=True, timeout=timeout_s, cwd=str(REPO_ROOT))
    if not path.is_file():
        raise RuntimeError(f"building the random CLIP vision model did not produce {path}")
    return path


# ---------------------------------------------------------------------------------------------------------
# Below runs in the child process (or as a script): it imports ComfyUI.

def build(models_dir: Path = MODELS_DIR) -> Path:
    root = _import_host()
    import torch

    import comfy.clip_vision

    path = random_clip_vision_path(models_dir)
    if path.is_file():
        return path
    with torch.device("meta"):
        model = comfy.clip_vision.ClipVisionModel(str(Path(root) / "comfy" / HOST_CONFIG))
    shapes = {key: tuple(value.shape) for key, value in model.model.state_dict().items()}
    _write_atomically(_random_tensors(shapes, SEED + 2), path, "clip-vision-vitl")
    return path


def verify(path: Path) -> None:
    """Load with the host's loader (as CLIPVisionLoader does) and encode two images once."""
    _import_host()
    import logging

    import torch

    import comfy.clip_vision

    warnings = []
    handler = logging.Handler(level=logging.WARNING)
    handler.emit = lambda record: warnings.append(record.getMessage())
    logging.getLogger().addHandler(handler)
    try:
        clip_vision = comfy.clip_vision.load(str(path))
    finally:
        logging.getLogger().removeHandler(handler)
    if clip_vision is None or any("missing" in message for message in warnings):
        raise AssertionError(f"the host's loader did not load {path} cleanly: {warnings}")
    images = torch.rand(2, 64, 64, 3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        embeds = clip_vision.encode_image(images)["image_embeds"]
    if tuple(embeds.shape) != (2, 768) or not torch.isfinite(embeds).all():
        raise AssertionError(f"image_embeds {tuple(embeds.shape)}, finite={bool(torch.isfinite(embeds).all())}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    parser.add_argument("--no-verify", action="store_true")
    options = parser.parse_args(argv)
    started = time.monotonic()
    path = build(options.models_dir)
    if not options.no_verify:
        verify(path)
    print(f"{path}  ({path.stat().st_size / 2**20:.0f} MiB)")
    print(f"in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
