"""stylealign_core imports no ComfyUI module: every core module imports in a process where ComfyUI cannot be.

The child process puts a finder first on sys.meta_path that refuses ComfyUI's top-level modules (comfy*,
folder_paths, latent_preview, node_helpers, server, nodes), then imports every module of the core.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
HOST_TREE = os.environ.get("COMFYUI_PATH") or str(REPO_ROOT / ".cache" / "comfyui-0.3.75")

CHILD = r"""
import importlib, importlib.abc, json, pkgutil, sys

REFUSED = ("folder_paths", "latent_preview", "node_helpers", "server", "nodes")
refused = []

class RefuseComfy(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        root = name.split(".")[0]
        if root.startswith("comfy") or root in REFUSED:
            refused.append(name)
            raise ModuleNotFoundError(f"{name} is refused in this test (ComfyUI is not importable)", name=name)
        return None

sys.meta_path.insert(0, RefuseComfy())
sys.path.insert(0, sys.argv[1])
sys.path.append(sys.argv[2])  # the ComfyUI host tree: without the finder, comfy would import from here
import stylealign_core

imported, optional_missing = [], []
for info in pkgutil.walk_packages(stylealign_core.__path__, "stylealign_core."):
    try:
        importlib.import_module(info.name)
    except ModuleNotFoundError as error:
        if error.name != "triton":  # the fused kernels' optional dependency, not ComfyUI
            raise
        optional_missing.append(info.name)
    else:
        imported.append(info.name)
host_loaded = sorted(name for name in sys.modules if name.split(".")[0].startswith("comfy") or name.split(".")[0] in REFUSED)
print(json.dumps({"imported": imported, "optional_missing": optional_missing, "refused": refused, "host_loaded": host_loaded}))
"""


def run_child(code: str) -> dict:
    completed = subprocess.run(
        [sys.executable, "-c", code, str(REPO_ROOT), HOST_TREE], capture_output=True, text=True, timeout=300, cwd=REPO_ROOT,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_every_core_module_imports_without_comfy():
    result = run_child(CHILD)
    expected = {
        ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts)
        for path in (REPO_ROOT / "stylealign_core").rglob("*.py")
        if path.name != "__init__.py" or path.parent != REPO_ROOT / "stylealign_core"
    }
    expected = {name.removesuffix(".__init__") for name in expected}
    assert set(result["imported"]) | set(result["optional_missing"]) == expected
    assert result["refused"] == [] and result["host_loaded"] == []


def test_the_finder_refuses_comfy():
    """The child's finder really makes ComfyUI unimportable (else the test above could not fail)."""
    probe = CHILD.replace("import stylealign_core\n", "import stylealign_core\ntry:\n    import comfy.model_patcher\nexcept ModuleNotFoundError:\n    pass\n")
    result = run_child(probe)
    assert result["refused"] and result["refused"][0] == "comfy" and result["host_loaded"] == []
