"""The one-command demo: a style-aligned set made by a headless ComfyUI with this pack, and a contact sheet.

    python tests/host/demo.py                                   # tiny random checkpoint: noise, in seconds
    python tests/host/demo.py --checkpoint ~/models/v1-5-pruned-emaonly.safetensors
    COMFYUI_PATH=~/ComfyUI python tests/host/demo.py            # its models/checkpoints/v1-5-pruned-emaonly.safetensors

It finds (or extracts) the ComfyUI host (tests/host/fetch_comfyui.py; run `bash tests/host/setup.sh` once on a
fresh machine), starts `main.py --listen 127.0.0.1` on a free port with this pack in a throw-away base
directory, queues the shipped SD1.5 set workflow (`workflows/api/stylealigned_sd15_set.json`: four prompts
in one watercolor style, slot 0 the reference), copies the images into the output folder (default `out/demo/`
in the repository, git-ignored), writes `contact_sheet.png` (the set in a grid, the reference framed in orange
and labelled, each image with its prompt) and prints the contact sheet's path as its last line.

With a real SD1.5 checkpoint (`--checkpoint PATH`, or `COMFYUI_PATH` whose models/checkpoints holds
v1-5-pruned-emaonly.safetensors) the workflow runs as shipped (512×512, 30 steps; on a GPU when torch sees one,
else on the CPU, which takes many minutes). Without one it runs on the tiny random checkpoint the tests use
(tests/host/tiny_checkpoint.py) at 128×128 with 3 steps: the pictures are then noise from random weights; the
demo shows the plumbing, not the method's quality.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
if __package__:
    from .api_workflows import API_WORKFLOWS_DIR, adapt_for_tiny_models, load_prompt, nodes_of
    from .fetch_comfyui import comfyui_path
    from .server import comfy_server
    from .tiny_checkpoint import TINY_CHECKPOINT_NAME, ensure_tiny_models
else:  # run as a script: import the helpers as the `host` package; tests/host itself must not shadow ComfyUI's modules
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
    sys.path.insert(0, str(HERE.parent))
    from host.api_workflows import API_WORKFLOWS_DIR, adapt_for_tiny_models, load_prompt, nodes_of
    from host.fetch_comfyui import comfyui_path
    from host.server import comfy_server
    from host.tiny_checkpoint import TINY_CHECKPOINT_NAME, ensure_tiny_models

REPO_ROOT = HERE.parents[1]
DEFAULT_OUT = REPO_ROOT / "out" / "demo"
WORKFLOW = API_WORKFLOWS_DIR / "stylealigned_sd15_set.json"
SHIPPED_CHECKPOINT = "v1-5-pruned-emaonly.safetensors"
TINY_SIZE = 128
TINY_STEPS = 3
NOISE_WARNING = ("No real checkpoint given: using the tiny RANDOM checkpoint of the tests. The pictures are noise "
                 "from random weights; they show the plumbing, not StyleAligned's quality. Give --checkpoint "
                 f"PATH (an SD1.5 .safetensors) or COMFYUI_PATH with models/checkpoints/{SHIPPED_CHECKPOINT}.")

# ---- the contact sheet ----------------------------------------------------------------------------------------

MIN_THUMB = 256           # small images are enlarged (nearest neighbour, integer factor) to at least this side
PAD = 16                  # around every image
BORDER = 6                # the reference's frame, drawn in the padding
LABEL_HEIGHT = 46         # two text lines under every image
HEADER_HEIGHT = 58        # title (and the noise warning) above the grid
MAX_COLUMNS = 4
BACKGROUND = (255, 255, 255)
REFERENCE_COLOR = (255, 140, 0)
TEXT_COLOR = (20, 20, 20)
WARNING_COLOR = (200, 0, 0)


@dataclass(frozen=True)
class SheetLayout:
    count: int
    side: int             # the images' side in pixels
    scale: int            # integer enlargement
    columns: int
    rows: int

    @property
    def thumb(self) -> int:
        return self.side * self.scale

    @property
    def cell(self) -> tuple[int, int]:
        return self.thumb + 2 * PAD, self.thumb + 2 * PAD + LABEL_HEIGHT

    @property
    def size(self) -> tuple[int, int]:
        return self.columns * self.cell[0], HEADER_HEIGHT + self.rows * self.cell[1]

    def image_box(self, index: int) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) of image `index` on the sheet (row-major order)."""
        row, column = divmod(index, self.columns)
        left, top = column * self.cell[0] + PAD, HEADER_HEIGHT + row * self.cell[1] + PAD
        return left, top, left + self.thumb, top + self.thumb


def sheet_layout(count: int, side: int) -> SheetLayout:
    if count < 1:
        raise ValueError("a contact sheet needs at least one image")
    columns = min(count, MAX_COLUMNS)
    return SheetLayout(count, side, max(1, math.ceil(MIN_THUMB / side)), columns, math.ceil(count / columns))


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def _fit(draw, text: str, font, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def make_contact_sheet(images: list[Path], path: Path, reference: int = 0, captions: list[str] | None = None,
                       title: str = "", warning: str = "") -> Path:
    """A grid PNG of `images` (all the same square size) with image `reference` framed and labelled."""
    from PIL import Image, ImageDraw

    pictures = [Image.open(image).convert("RGB") for image in images]
    side = pictures[0].width
    if any(picture.size != (side, side) for picture in pictures):
        raise ValueError(f"contact sheet images must all be {side}×{side}: {[p.size for p in pictures]}")
    layout = sheet_layout(len(pictures), side)
    sheet = Image.new("RGB", layout.size, BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    small, large = _font(14), _font(18)
    draw.text((PAD, 8), _fit(draw, title, large, layout.size[0] - 2 * PAD), fill=TEXT_COLOR, font=large)
    if warning:
        draw.text((PAD, 32), _fit(draw, warning, small, layout.size[0] - 2 * PAD), fill=WARNING_COLOR, font=small)
    for index, picture in enumerate(pictures):
        left, top, right, bottom = layout.image_box(index)
        sheet.paste(picture.resize((layout.thumb, layout.thumb), Image.NEAREST), (left, top))
        if index == reference:
            draw.rectangle((left - BORDER, top - BORDER, right + BORDER - 1, bottom + BORDER - 1),
                           outline=REFERENCE_COLOR, width=BORDER)
        label = f"reference · slot {index}" if index == reference else f"slot {index}"
        color = REFERENCE_COLOR if index == reference else TEXT_COLOR
        draw.text((left, bottom + 8), label, fill=color, font=large if index == reference else small)
        caption = (captions or [""] * len(pictures))[index]
        draw.text((left, bottom + 28), _fit(draw, caption, small, layout.thumb), fill=TEXT_COLOR, font=small)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


# ---- the run --------------------------------------------------------------------------------------------------

@dataclass
class DemoResult:
    contact_sheet: Path
    images: list[Path]
    tiny: bool
    checkpoint: Path
    seconds: float
    captions: list[str] = field(default_factory=list)


def find_checkpoint(option: str | None) -> Path | None:
    """--checkpoint, else COMFYUI_PATH/models/checkpoints/v1-5-pruned-emaonly.safetensors, else None (tiny)."""
    if option:
        path = Path(option).expanduser().resolve()
        if not path.is_file():
            raise SystemExit(f"--checkpoint {option}: no such file")
        return path
    comfy = os.environ.get("COMFYUI_PATH")
    if comfy:
        path = Path(comfy).expanduser() / "models" / "checkpoints" / SHIPPED_CHECKPOINT
        if path.is_file():
            return path.resolve()
        print(f"[demo] COMFYUI_PATH is set but has no models/checkpoints/{SHIPPED_CHECKPOINT}")
    return None


def _gpu_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


def _captions(entry: dict, prompt: dict, count: int) -> list[str]:
    """Each image's prompt, from StyleAlignedPromptBatch's report ("image i (role): line k: text")."""
    for node_id in nodes_of(prompt, "StyleAlignedPromptBatch"):
        texts = entry.get("outputs", {}).get(node_id, {}).get("text") or []
        lines = texts[0].splitlines() if texts else []
        captions = [line.split(": ", 2)[-1] for line in lines if line.startswith("image ")]
        if len(captions) == count:
            return captions
    return [""] * count


def run_demo(out_dir: Path = DEFAULT_OUT, checkpoint: Path | None = None, steps: int | None = None,
             seed: int | None = None, timeout: float = 4 * 3600.0, log=print) -> DemoResult:
    started = time.monotonic()
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    host = comfyui_path()
    log(f"[demo] ComfyUI host: {host}")
    prompt = load_prompt(WORKFLOW)
    tiny = checkpoint is None
    if tiny:
        log(f"[demo] {NOISE_WARNING}")
        checkpoint = ensure_tiny_models().checkpoint
        prompt = adapt_for_tiny_models(prompt, TINY_CHECKPOINT_NAME, size=TINY_SIZE, max_steps=TINY_STEPS)
    else:
        for node_id in nodes_of(prompt, "CheckpointLoaderSimple"):
            prompt[node_id]["inputs"]["ckpt_name"] = checkpoint.name
    for node_id in nodes_of(prompt, "KSampler"):
        if steps is not None:
            prompt[node_id]["inputs"]["steps"] = steps
        if seed is not None:
            prompt[node_id]["inputs"]["seed"] = seed
    for node_id in nodes_of(prompt, "SaveImage"):
        prompt[node_id]["inputs"]["filename_prefix"] = "demo/stylealigned"
    use_gpu = not tiny and _gpu_available()
    log(f"[demo] checkpoint: {checkpoint}" + ("" if tiny else f" ({'GPU' if use_gpu else 'CPU: this takes a while'})"))

    log_path = out_dir / "server.log"
    with comfy_server(checkpoints={checkpoint.name: checkpoint}, log_path=log_path, keep_base_dir=False,
                      cpu=not use_gpu) as server:
        log(f"[demo] ComfyUI with StyleAligned at {server.url} (log {log_path}); running {WORKFLOW.name}")
        entry = server.run(prompt, timeout=timeout)
        refs = server.output_images(entry)
        for old in out_dir.glob("stylealigned_slot*.png"):
            old.unlink()
        images = []
        for index, ref in enumerate(refs):
            name = f"stylealigned_slot{index}{'_reference' if index == 0 else ''}.png"
            images.append(Path(shutil.copyfile(server.image_path(ref), out_dir / name)))
        captions = _captions(entry, prompt, len(images))
    if not images:
        raise RuntimeError(f"the workflow saved no image; see {log_path}")
    patch = nodes_of(prompt, "StyleAlignedPatch")[0]
    reference = prompt[patch]["inputs"]["reference_index"]
    side = prompt[nodes_of(prompt, "EmptyLatentImage")[0]]["inputs"]["width"]
    title = (f"StyleAligned · SD1.5 set · {checkpoint.name} · {side}x{side} · "
             f"{prompt[nodes_of(prompt, 'KSampler')[0]]['inputs']['steps']} steps")
    warning = "tiny RANDOM checkpoint: these pictures are noise from random weights" if tiny else ""
    sheet = make_contact_sheet(images, out_dir / "contact_sheet.png", reference, captions, title, warning)
    return DemoResult(sheet, images, tiny, checkpoint, time.monotonic() - started, captions)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: out/demo/ in the repository)")
    parser.add_argument("--checkpoint", help=f"an SD1.5 checkpoint file (default: COMFYUI_PATH's {SHIPPED_CHECKPOINT}, "
                                             "else the tiny random test checkpoint)")
    parser.add_argument("--tiny", action="store_true", help="use the tiny random checkpoint even when a real one is found")
    parser.add_argument("--steps", type=int, help="sampling steps (default: the workflow's 30; 3 with the tiny checkpoint)")
    parser.add_argument("--seed", type=int, help="sampler seed (default: the workflow's)")
    options = parser.parse_args(argv)
    if options.tiny and options.checkpoint:
        parser.error("--tiny and --checkpoint exclude each other")
    checkpoint = None if options.tiny else find_checkpoint(options.checkpoint)
    result = run_demo(options.out, checkpoint, options.steps, options.seed)
    print(f"[demo] {len(result.images)} images in {result.contact_sheet.parent} ({result.seconds:.0f} s)")
    if result.tiny:
        print("[demo] reminder: made with the tiny random checkpoint, so the pictures are noise from random weights")
    print(result.contact_sheet)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
