"""End-to-end fixtures: one real ComfyUI server per test session, with this pack and the tiny models.

The server runs in a child process (`python main.py --cpu --listen 127.0.0.1 --port N`), so nothing of
ComfyUI is imported into the pytest process. Its base directory (outputs and server.log included) is
under pytest's temporary directory; the log is copied to `.cache/artifacts/e2e-server.log` at the end.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from host import distributed
from host.api_workflows import SHIPPED_IMAGE_NAME, TEST_IMAGE_NAME, write_test_image
from host.server import ComfyServer, comfy_server
from host.tiny_checkpoint import TINY_CHECKPOINT_NAME, TINY_CONTROLNET_NAME, ensure_tiny_models
from host.tiny_clip_vision_file import RANDOM_CLIP_VISION_NAME, ensure_random_clip_vision
from host.tiny_transformer_files import TransformerFiles, ensure_transformer_files

REPO_ROOT = Path(__file__).resolve().parents[2]
STAND_IN_NODE_PACK = REPO_ROOT / "tests" / "host" / "standin_text_encoders"
ARTIFACTS_DIR = REPO_ROOT / ".cache" / "artifacts"
E2E_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = Path(str(item.fspath)).resolve()
        if E2E_DIR in path.parents:
            item.add_marker(pytest.mark.e2e)
            if path.name == "test_browser.py":
                item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS_DIR


@pytest.fixture(scope="session")
def tiny_models():
    """The tiny SD1.5-layout checkpoint and ControlNet (built once into .cache/models/)."""
    return ensure_tiny_models()


@pytest.fixture(scope="session")
def random_clip_vision() -> Path:
    """A CLIP ViT-L vision model with random weights that CLIPVisionLoader loads (built once into .cache/models/)."""
    return ensure_random_clip_vision()


@pytest.fixture(scope="session")
def comfy(tiny_models, random_clip_vision, tmp_path_factory, artifacts_dir) -> ComfyServer:
    """The running server. Model names in its folders: TINY_CHECKPOINT_NAME, TINY_CONTROLNET_NAME,
    RANDOM_CLIP_VISION_NAME (models/clip_vision);
    input images: TEST_IMAGE_NAME and SHIPPED_IMAGE_NAME (example.png, what the shipped workflows load), both
    the same 64×64 test picture. ComfyUI-Distributed is installed too when its tarball is there (the shipped
    distributed workflow uses its nodes; without it the tests of that workflow skip)."""
    base = tmp_path_factory.mktemp("comfy-base")
    if distributed.find_tarball() is not None:
        distributed.install(base)
    image = write_test_image(tmp_path_factory.mktemp("inputs") / TEST_IMAGE_NAME)
    # The log is written in the session's own base directory (sessions may run side by side) and copied to
    # the artifacts folder when the server has stopped.
    try:
        with comfy_server(
            base,
            checkpoints={TINY_CHECKPOINT_NAME: tiny_models.checkpoint},
            controlnets={TINY_CONTROLNET_NAME: tiny_models.controlnet},
            models={"clip_vision": {RANDOM_CLIP_VISION_NAME: random_clip_vision}},
            inputs={TEST_IMAGE_NAME: image, SHIPPED_IMAGE_NAME: image},
        ) as server:
            yield server
    finally:
        if (base / "server.log").is_file():
            shutil.copyfile(base / "server.log", artifacts_dir / "e2e-server.log")


@pytest.fixture(scope="session")
def object_info(comfy) -> dict:
    return comfy.object_info()


@pytest.fixture
def unique_prefix(request) -> str:
    """A SaveImage filename_prefix of its own for each run (no cache hits, easy to find in output/)."""
    def make(tag: str = "") -> str:
        name = request.node.name.replace("[", "_").replace("]", "").replace("/", "_").replace(".", "_")
        return f"e2e/{name}{'_' + tag if tag else ''}_{uuid.uuid4().hex[:8]}"
    return make


@pytest.fixture(scope="session")
def transformer_files() -> TransformerFiles:
    """The Flux/Qwen-Image/Z-Image diffusion models, their VAEs and CLIP-L (built once into .cache/models/)."""
    return ensure_transformer_files()


@pytest.fixture(scope="session")
def transformer_comfy(transformer_files, tmp_path_factory, artifacts_dir) -> ComfyServer:
    """A second server for the transformer workflows (started only by the tests that use it): the files of
    tests/host/tiny_transformer_files.py in models/diffusion_models, vae and text_encoders, and the test-only
    stand-in text-encoder pack (tests/host/standin_text_encoders) in custom_nodes."""
    base = tmp_path_factory.mktemp("comfy-transformer-base")
    try:
        with comfy_server(
            base,
            models={folder: transformer_files.in_folder(folder) for folder in ("diffusion_models", "vae", "text_encoders")},
            custom_nodes={"test-standin-text-encoders": STAND_IN_NODE_PACK},
        ) as server:
            yield server
    finally:
        if (base / "server.log").is_file():
            shutil.copyfile(base / "server.log", artifacts_dir / "e2e-transformer-server.log")
