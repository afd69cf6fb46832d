"""Test set-up: `host` (the ComfyUI test host helpers) and the pure-torch core are importable.

The repository root is appended, not prepended, so ComfyUI's own top-level `nodes` module always wins
over this pack's `nodes/` package; host tests load the pack through ComfyUI (tests/host/comfy_env.py).
"""

import sys
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))
if str(REPO_ROOT) not in sys.path:
    sys.path.append(str(REPO_ROOT))


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def pack():
    """The pack as ComfyUI loaded it (host imported in CPU mode)."""
    from host.comfy_env import load_host

    return load_host()


@pytest.fixture(scope="session")
def error_type(pack):
    """The pack's StyleAlignedError class (the copy ComfyUI loaded, not the top-level import)."""
    return pack.stylealign_core.StyleAlignedError


@pytest.fixture(scope="module")
def model(kind):
    """The tiny random model of the test module's `kind` (a DiT kind of tests/host/tiny_families; a module
    that needs another model defines its own `model` fixture, which takes precedence)."""
    from host.tiny_dit_models import tiny_dit

    return tiny_dit(kind)
