"""ComfyUI-Distributed (robertvoy, Apache-2.0) for the tests: installed from its release tarball, configured
through its HTTP API as its docs describe.

The tarball is never committed: it is looked for in `shared/hosts/` beside this checkout (CI keeps a copy of
shared/ beside its clone), beside the main checkout when this is a git worktree, or at
$COMFYUI_DISTRIBUTED_TARBALL. Each server gets its own copy in its base directory's custom_nodes (the
extension keeps its config file, gpu_config.json, inside its own folder).
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any, Mapping

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
TARBALL_NAME = "ComfyUI-Distributed-1.4.4.tar.gz"
EXTENSION_DIR_NAME = "ComfyUI-Distributed"
TARBALL_ENV = "COMFYUI_DISTRIBUTED_TARBALL"


def _main_checkout() -> Path | None:
    """The main checkout of a git worktree (its .git is a file: `gitdir: <main>/.git/worktrees/<name>`)."""
    dot_git = REPO_ROOT / ".git"
    if not dot_git.is_file():
        return None
    text = dot_git.read_text().strip()
    if not text.startswith("gitdir:"):
        return None
    gitdir = Path(text.split(":", 1)[1].strip())
    return gitdir.parents[2] if len(gitdir.parents) > 2 and gitdir.parent.name == "worktrees" else None


def tarball_candidates() -> list[Path]:
    import os

    candidates = [Path(os.environ[TARBALL_ENV])] if os.environ.get(TARBALL_ENV) else []
    candidates.append(REPO_ROOT.parent / "shared" / "hosts" / TARBALL_NAME)
    main = _main_checkout()
    if main is not None:
        candidates.append(main.parent / "shared" / "hosts" / TARBALL_NAME)
    return candidates


def find_tarball() -> Path | None:
    return next((path for path in tarball_candidates() if path.is_file()), None)


def missing_reason() -> str:
    return (f"ComfyUI-Distributed's tarball {TARBALL_NAME} is not there (looked at "
            f"{', '.join(str(path) for path in tarball_candidates())})")


def install(base_dir: Path, tarball: Path | None = None) -> Path:
    """Extract the extension into BASE/custom_nodes/ComfyUI-Distributed (a fresh copy); return that folder."""
    tarball = tarball or find_tarball()
    if tarball is None:
        raise FileNotFoundError(missing_reason())
    target = Path(base_dir) / "custom_nodes" / EXTENSION_DIR_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.exists():
        shutil.rmtree(target)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch, tarfile.open(tarball) as archive:
        options = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        archive.extractall(scratch, **options)
        (extracted,) = [path for path in Path(scratch).iterdir() if path.is_dir()]
        extracted.rename(target)
    return target


def register_worker(master, worker_port: int, worker_id: str = "1", name: str = "w1") -> dict:
    """Add (or update) a remote worker on 127.0.0.1 in the master's config; returns the config as read back."""
    _post(master, "/distributed/config/update_worker", {
        "worker_id": worker_id, "name": name, "host": "127.0.0.1", "port": worker_port, "cuda_device": None,
        "enabled": True, "type": "remote"})
    return master.get_json("/distributed/config")


def set_worker_timeout(master, seconds: int) -> dict:
    """How long the master's collector waits for a silent worker (the extension's default is 60 s)."""
    _post(master, "/distributed/config", {"worker_timeout_seconds": int(seconds)})
    config = master.get_json("/distributed/config")
    if int(config.get("settings", {}).get("worker_timeout_seconds", -1)) != int(seconds):
        raise RuntimeError(f"worker_timeout_seconds not taken: {config}")
    return config


def queue(master, prompt: Mapping[str, Any], worker_ids: list[str]) -> dict:
    """POST /distributed/queue as the front end does; returns the answer (prompt_id, worker_count, node_errors)."""
    return _post(master, "/distributed/queue", {"prompt": dict(prompt), "client_id": master.client_id,
                                               "enabled_worker_ids": list(worker_ids)})


def _post(server, path: str, body: Mapping[str, Any]) -> Any:
    status, answer = server._request("POST", path, dict(body))
    if status != 200:
        raise RuntimeError(f"POST {path} answered {status}: {str(answer)[:1000]}")
    return answer
