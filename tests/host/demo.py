"""The one-command demo: a style-aligned set made by a headless ComfyUI with this pack, and a contact sheet.

    python tests/host/demo.py                                   # tiny random checkpoint: noise, in seconds
    python tests/host/demo.py --checkpoint ~/models/v1-5-pruned-emaonly.safetensors
    COMFYUI_PATH=~/ComfyUI python tests/host/demo.py            # its models/checkpoints/v1-5-pruned-emaonly.safetensors

It finds (or extracts) the ComfyUI host (tests/host/fetch_comfyui.py; run `bash tests/host/setup.sh` once on a
fresh machine), starts `main.py --listen 127.0.0.1` on a free port with this pack in a throw-away base
directory, queues the shipped SD1.5 set workflow (`workflows/api/stylealigned_sd15_set.json`: four prompts
in one watercolor style, slot 0 the reference) and the same graph with StyleAlignedPatch bypassed (same prompts,
seeds and settings), copies the images into the output folder (default `out/demo/` in the repository,
git-ignored), writes a contact sheet and prints its path as its last line. The sheet has two rows, the set
with StyleAligned above the same set bypassed, each image with its prompt; the reference is framed in orange.
Under every StyleAligned image stands its measured difference from its bypassed twin (mean and largest
|Δ| per 8-bit channel value, from the saved PNGs): the reference's is the proof that it comes out unchanged
(≤ 1/255), each target's what the node changed.

With a real SD1.5 checkpoint (`--checkpoint PATH`, or `COMFYUI_PATH` whose models/checkpoints holds
v1-5-pruned-emaonly.safetensors) the workflow runs as shipped (512×512, 30 steps; on a GPU when torch sees one,
else on the CPU, which takes many minutes). Without one it runs on the tiny random checkpoint the tests use
(tests/host/tiny_checkpoint.py) at 128×128 with 3 steps: the pictures are then noise from random weights, and
every file made from them has "random-weights" in its name; the two rows and their differences still show
what the node changes (the targets) and what it leaves alone (the reference), not the method's quality.
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
    from .api_workflows import API_WORKFLOWS_DIR, adapt_for_tiny_models, bypass, load_prompt, nodes_of
    from .fetch_comfyui import comfyui_path
    from .server import comfy_server
    from .tiny_checkpoint import TINY_CHECKPOINT_NAME, ensure_tiny_models
else:  # run as a script: import the helpers as the `host` package; tests/host itself must not shadow ComfyUI's modules
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
    sys.path.insert(0, str(HERE.parent))
    from host.api_workflows import API_WORKFLOWS_DIR, adapt_for_tiny_models, bypass, load_prompt, nodes_of
    from host.fetch_comfyui import comfyui_path
    from host.server import comfy_server
    from host.tiny_checkpoint import TINY_CHECKPOINT_NAME, ensure_tiny_models

REPO_ROOT = HERE.parents[1]
DEFAULT_OUT = REPO_ROOT / "out" / "demo"
WORKFLOW = API_WORKFLOWS_DIR / "stylealigned_sd15_set.json"
SHIPPED_CHECKPOINT = "v1-5-pruned-emaonly.safetensors"
TINY_SIZE = 128
TINY_STEPS = 3
RANDOM_WEIGHTS_TAG = "random-weights"  # in the name of every file made with the tiny random checkpoint
ROWS = ("stylealigned", "bypassed")    # file-name stem of each sheet row: the set with the node, then without
DIFFERENCE_GAIN = 8                     # the sheet's third row: |with - bypassed| x this, so small changes show
# The sheet's texts keep to characters the default bitmap/TrueType font draws (no Δ, −, ×).
ROW_TITLES = (
    "with StyleAligned (under each image: how far it is from the image below, in 8-bit values)",
    "StyleAligned bypassed: same prompts, seeds and settings",
    f"where StyleAligned changed the image: |with - bypassed| x {DIFFERENCE_GAIN} (black = unchanged)",
)
NOISE_WARNING = ("No real checkpoint given: using the tiny RANDOM checkpoint of the tests. The pictures are noise "
                 "from random weights; they show the plumbing, not StyleAligned's quality. Give --checkpoint "
                 f"PATH (an SD1.5 .safetensors) or COMFYUI_PATH with models/checkpoints/{SHIPPED_CHECKPOINT}.")

# ---- the contact sheet ----------------------------------------------------------------------------------------

MIN_THUMB = 256           # small images are enlarged (nearest neighbour, integer factor) to at least this side
PAD = 16                  # around every image
BORDER = 6                # the reference's frame, drawn in the padding
LABEL_HEIGHT = 66         # three text lines under every image: slot, prompt, difference from the bypassed twin
HEADER_HEIGHT = 58        # title (and the noise warning) above the grid
ROW_TITLE_HEIGHT = 28     # the row's title above each row
BACKGROUND = (255, 255, 255)
REFERENCE_COLOR = (255, 140, 0)
TEXT_COLOR = (20, 20, 20)
WARNING_COLOR = (200, 0, 0)
ROW_TITLE_COLOR = (30, 70, 160)
UNCHANGED_MAX_DIFFERENCE = 1  # in 8-bit values: the reference counts as unchanged within 1/255 (PNG rounding)


@dataclass(frozen=True)
class SheetLayout:
    count: int            # images per row (one set)
    side: int             # the images' side in pixels
    scale: int            # integer enlargement
    rows: int = len(ROW_TITLES)

    @property
    def columns(self) -> int:
        return self.count

    @property
    def thumb(self) -> int:
        return self.side * self.scale

    @property
    def cell(self) -> tuple[int, int]:
        return self.thumb + 2 * PAD, ROW_TITLE_HEIGHT + self.thumb + 2 * PAD + LABEL_HEIGHT

    @property
    def size(self) -> tuple[int, int]:
        return self.columns * self.cell[0], HEADER_HEIGHT + self.rows * self.cell[1]

    def row_title_origin(self, row: int) -> tuple[int, int]:
        return PAD, HEADER_HEIGHT + row * self.cell[1] + 6

    def image_box(self, index: int, row: int = 0) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) of slot `index` of row `row` on the sheet."""
        left = index * self.cell[0] + PAD
        top = HEADER_HEIGHT + row * self.cell[1] + ROW_TITLE_HEIGHT + PAD
        return left, top, left + self.thumb, top + self.thumb


def sheet_layout(count: int, side: int, rows: int = len(ROW_TITLES)) -> SheetLayout:
    if count < 1:
        raise ValueError("a contact sheet needs at least one image")
    return SheetLayout(count, side, max(1, math.ceil(MIN_THUMB / side)), rows)


@dataclass(frozen=True)
class Difference:
    """How far an image is from its bypassed twin, in 8-bit channel values (0-255)."""
    mean: float
    largest: int

    @property
    def unchanged(self) -> bool:
        return self.largest <= UNCHANGED_MAX_DIFFERENCE


def image_difference(image: Path, twin: Path) -> Difference:
    """Mean and largest |Δ| over every pixel and channel of two saved images of one size."""
    import numpy as np
    from PIL import Image

    a, b = (np.asarray(Image.open(path).convert("RGB"), dtype=np.int16) for path in (image, twin))
    if a.shape != b.shape:
        raise ValueError(f"{image.name} and {twin.name} differ in size: {a.shape} vs {b.shape}")
    delta = np.abs(a - b)
    return Difference(float(delta.mean()), int(delta.max()))


def difference_text(difference: Difference, is_reference: bool) -> str:
    """Short enough for one line under a 256-pixel image."""
    if is_reference:
        return f"{'unchanged' if difference.unchanged else 'CHANGED'}: max diff {difference.largest}/255"
    return f"differs: mean {difference.mean:.1f}, max {difference.largest} /255"


def difference_picture(image: Path, twin: Path, gain: int = DIFFERENCE_GAIN):
    """|image − twin| per channel × gain (clipped), as a picture."""
    import numpy as np
    from PIL import Image

    a, b = (np.asarray(Image.open(path).convert("RGB"), dtype=np.int16) for path in (image, twin))
    return Image.fromarray(np.clip(np.abs(a - b) * gain, 0, 255).astype(np.uint8))


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


def make_contact_sheet(rows: list[list[Path]], path: Path, reference: int = 0, captions: list[str] | None = None,
                       title: str = "", warning: str = "", row_titles: tuple[str, ...] = ROW_TITLES) -> Path:
    """A PNG with one row per set (all square images of one size): the StyleAligned set, then its bypassed
    twin, then where they differ (amplified). The reference is framed and labelled; under every image of the
    first row its measured difference from the image below it."""
    from PIL import Image, ImageDraw

    pictures = [[Image.open(image).convert("RGB") for image in row] for row in rows]
    if len(rows) == 2:
        pictures.append([difference_picture(image, twin) for image, twin in zip(*rows)])
    side = pictures[0][0].width
    count = len(pictures[0])
    if any(len(row) != count for row in pictures) or any(p.size != (side, side) for row in pictures for p in row):
        raise ValueError(f"contact sheet rows must hold {count} images of {side}×{side}")
    layout = sheet_layout(count, side, len(pictures))
    sheet = Image.new("RGB", layout.size, BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    small, large = _font(14), _font(18)
    draw.text((PAD, 8), _fit(draw, title, large, layout.size[0] - 2 * PAD), fill=TEXT_COLOR, font=large)
    if warning:
        draw.text((PAD, 32), _fit(draw, warning, small, layout.size[0] - 2 * PAD), fill=WARNING_COLOR, font=small)
    for row, row_pictures in enumerate(pictures):
        draw.text(layout.row_title_origin(row), _fit(draw, row_titles[row], large, layout.size[0] - 2 * PAD),
                  fill=ROW_TITLE_COLOR, font=large)
        for index, picture in enumerate(row_pictures):
            left, top, right, bottom = layout.image_box(index, row)
            sheet.paste(picture.resize((layout.thumb, layout.thumb), Image.NEAREST), (left, top))
            is_reference = index == reference
            if is_reference:
                draw.rectangle((left - BORDER, top - BORDER, right + BORDER - 1, bottom + BORDER - 1),
                               outline=REFERENCE_COLOR, width=BORDER)
            label = f"reference · slot {index}" if is_reference else f"slot {index}"
            color = REFERENCE_COLOR if is_reference else TEXT_COLOR
            draw.text((left, bottom + 8), label, fill=color, font=large if is_reference else small)
            caption = (captions or [""] * count)[index] if row < len(rows) else f"|with - bypassed| x {DIFFERENCE_GAIN}"
            draw.text((left, bottom + 28), _fit(draw, caption, small, layout.thumb), fill=TEXT_COLOR, font=small)
            if row == 0 and len(rows) > 1:
                difference = image_difference(rows[0][index], rows[1][index])
                text_color = WARNING_COLOR if is_reference and not difference.unchanged else TEXT_COLOR
                draw.text((left, bottom + 46), _fit(draw, difference_text(difference, is_reference), small, layout.thumb),
                          fill=text_color, font=small)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


# ---- the run --------------------------------------------------------------------------------------------------

@dataclass
class DemoResult:
    contact_sheet: Path
    images: list[Path]            # the set with StyleAligned, in slot order
    bypassed_images: list[Path]   # the same graph with StyleAlignedPatch bypassed
    differences: list[Difference]  # each slot's difference from its bypassed twin
    reference: int
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
    patch = nodes_of(prompt, "StyleAlignedPatch")[0]
    # Both graphs are run on every call (saved under their own prefix, so the server never answers from its cache).
    graphs = {ROWS[0]: prompt, ROWS[1]: bypass(prompt, [patch])}
    for row, graph in graphs.items():
        for node_id in nodes_of(graph, "SaveImage"):
            graph[node_id]["inputs"]["filename_prefix"] = f"demo/{row}_{time.time_ns()}"
    reference = prompt[patch]["inputs"]["reference_index"]
    use_gpu = not tiny and _gpu_available()
    log(f"[demo] checkpoint: {checkpoint}" + ("" if tiny else f" ({'GPU' if use_gpu else 'CPU: this takes a while'})"))

    log_path = out_dir / "server.log"
    with comfy_server(checkpoints={checkpoint.name: checkpoint}, log_path=log_path, keep_base_dir=False,
                      cpu=not use_gpu) as server:
        log(f"[demo] ComfyUI with StyleAligned at {server.url} (log {log_path}); running {WORKFLOW.name} "
            "with StyleAligned, then with it bypassed")
        for old in [*out_dir.glob("stylealigned_*.png"), *out_dir.glob("bypassed_*.png"), *out_dir.glob("contact_sheet*.png")]:
            old.unlink()
        tag = f"_{RANDOM_WEIGHTS_TAG}" if tiny else ""
        saved: dict[str, list[Path]] = {}
        for row, graph in graphs.items():
            entry = server.run(graph, timeout=timeout)
            saved[row] = [
                Path(shutil.copyfile(server.image_path(ref), out_dir / f"{row}{tag}_slot{index}{'_reference' if index == reference else ''}.png"))
                for index, ref in enumerate(server.output_images(entry))
            ]
            if row == ROWS[0]:
                captions = _captions(entry, graph, len(saved[row]))
    images, bypassed_images = saved[ROWS[0]], saved[ROWS[1]]
    if not images or len(images) != len(bypassed_images):
        raise RuntimeError(f"the workflow saved {len(images)} images with StyleAligned and {len(bypassed_images)} "
                           f"without; see {log_path}")
    differences = [image_difference(image, twin) for image, twin in zip(images, bypassed_images)]
    side = prompt[nodes_of(prompt, "EmptyLatentImage")[0]]["inputs"]["width"]
    title = (f"StyleAligned · SD1.5 set · {checkpoint.name} · {side}x{side} · "
             f"{prompt[nodes_of(prompt, 'KSampler')[0]]['inputs']['steps']} steps")
    warning = "tiny RANDOM checkpoint: these pictures are noise from random weights" if tiny else ""
    sheet = make_contact_sheet([images, bypassed_images], out_dir / f"contact_sheet{tag}.png", reference, captions,
                               title, warning)
    return DemoResult(sheet, images, bypassed_images, differences, reference, tiny, checkpoint,
                      time.monotonic() - started, captions)


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
    print(f"[demo] {len(result.images)} images with StyleAligned and {len(result.bypassed_images)} bypassed in "
          f"{result.contact_sheet.parent} ({result.seconds:.0f} s)")
    for index, difference in enumerate(result.differences):
        role = "reference" if index == result.reference else "target"
        print(f"[demo] slot {index} ({role}) {difference_text(difference, index == result.reference)}")
    if result.tiny:
        print("[demo] reminder: made with the tiny random checkpoint, so the pictures are noise from random weights")
    print(result.contact_sheet)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
