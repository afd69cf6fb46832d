"""Run the real ComfyUI server with this pack installed, for end-to-end tests and the demo.

    with comfy_server(checkpoints={"tiny.safetensors": path}) as server:
        prompt_id = server.queue(api_prompt)          # POST /prompt
        entry = server.wait(prompt_id, timeout=120)    # polls GET /history/{id}
        for ref in server.output_images(entry): ...

`comfy_server` makes a fresh base directory (models/checkpoints, models/controlnet, models/clip_vision, custom_nodes with a
symlink `ComfyUI-StyleAligned` → this repository, input, output, temp, user), links the given model files in (copies the input pictures),
starts `python main.py --cpu --listen 127.0.0.1 --port <free port> --base-directory DIR
--disable-auto-launch` from the ComfyUI root (fetch_comfyui.comfyui_path()), waits until the server answers,
writes its output to a log file, and stops it on exit, also when the body raises. Every loop is bounded
by a timeout; the server only ever listens on 127.0.0.1. Only the standard library is used (urllib).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Iterator, Mapping

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
PACK_DIR_NAME = "ComfyUI-StyleAligned"
HOST = "127.0.0.1"

if __package__:
    from .fetch_comfyui import comfyui_path, host_packages_dir
else:  # run as a script: import the helpers as the `host` package; tests/host itself must not shadow ComfyUI's modules
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
    sys.path.insert(0, str(HERE.parent))
    from host.fetch_comfyui import comfyui_path, host_packages_dir

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
_LEVEL_TAG = re.compile(r"^\[(?:DEBUG|DETAIL|INFO|WARNING|ERROR|CRITICAL)\] ", re.MULTILINE)

BASE_SUBDIRS = ("models/checkpoints", "models/controlnet", "models/clip_vision", "custom_nodes", "input", "output", "temp", "user")


class ServerError(RuntimeError):
    """The server could not be started, died, or answered in an unexpected way."""


class PromptRejected(ServerError):
    """POST /prompt answered with an error (validation failed): `status` and the decoded `body`."""

    def __init__(self, status: int, body: Any):
        self.status = status
        self.body = body
        super().__init__(f"POST /prompt answered {status}: {json.dumps(body)[:2000]}")


class ExecutionFailed(ServerError):
    """The prompt was accepted but its execution ended in an error (history status 'error')."""

    def __init__(self, prompt_id: str, entry: dict):
        self.prompt_id = prompt_id
        self.entry = entry
        messages = entry.get("status", {}).get("messages", [])
        errors = [m[1] for m in messages if m and m[0] == "execution_error"]
        detail = "; ".join(f"{e.get('node_type')}: {e.get('exception_message', '').strip()}" for e in errors) or json.dumps(messages)[:2000]
        super().__init__(f"prompt {prompt_id} failed: {detail}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _link(target: Path, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(Path(target).resolve(), target_is_directory=Path(target).is_dir())


def prepare_base_directory(
    base_dir: Path,
    checkpoints: Mapping[str, Path] | None = None,
    controlnets: Mapping[str, Path] | None = None,
    inputs: Mapping[str, Path] | None = None,
    models: Mapping[str, Mapping[str, Path]] | None = None,
    custom_nodes: Mapping[str, Path] | None = None,
) -> Path:
    """Lay out a ComfyUI base directory with this pack installed and the given files linked in by name.

    models: other model folders, {"diffusion_models": {name: path}, "vae": {...}, "text_encoders": {...}};
    custom_nodes: further node packs (e.g. test-only ones), {folder name: package directory}."""
    base_dir = Path(base_dir).resolve()
    for sub in BASE_SUBDIRS:
        (base_dir / sub).mkdir(parents=True, exist_ok=True)
    _link(REPO_ROOT, base_dir / "custom_nodes" / PACK_DIR_NAME)
    for name, path in (custom_nodes or {}).items():
        _link(Path(path), base_dir / "custom_nodes" / name)
    folders = [("models/checkpoints", checkpoints), ("models/controlnet", controlnets)]
    folders += [(f"models/{folder}", files) for folder, files in (models or {}).items()]
    for folder, files in folders:
        for name, path in (files or {}).items():
            _link(Path(path), base_dir / folder / name)
    # Input pictures are copied: ComfyUI 0.33 refuses an input whose real path lies outside the input folder
    # (a symlink to elsewhere: "Invalid image file").
    for name, path in (inputs or {}).items():
        target = base_dir / "input" / name
        if target.is_symlink() or target.exists():
            target.unlink()
        shutil.copyfile(Path(path), target)
    return base_dir


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class ComfyServer:
    """A running ComfyUI server process and a small urllib client for it."""

    def __init__(self, base_dir: Path, port: int | None = None, log_path: Path | None = None,
                 extra_args: tuple[str, ...] = (), comfy_root: Path | None = None, cpu: bool = True):
        self.base_dir = Path(base_dir).resolve()
        self.cpu = cpu  # False: let ComfyUI pick the GPU (the demo with a real checkpoint on a GPU machine)
        self.port = port or free_port()
        self.log_path = Path(log_path) if log_path else self.base_dir / "server.log"
        self.extra_args = tuple(extra_args)
        self.comfy_root = Path(comfy_root) if comfy_root else comfyui_path()
        self.url = f"http://{HOST}:{self.port}"
        self.client_id = uuid.uuid4().hex
        self.process: subprocess.Popen | None = None
        self._log_file = None
        self.startup_log = ""
        self.startup_seconds = float("nan")

    # ---- process ---------------------------------------------------------------------------------------
    def command(self) -> list[str]:
        return [
            sys.executable, "main.py", *(["--cpu"] if self.cpu else []), "--listen", HOST, "--port", str(self.port),
            "--base-directory", str(self.base_dir), "--disable-auto-launch",
            *self._database_args(),
            *self.extra_args,
        ]

    def _database_args(self) -> list[str]:
        # The default database path is inside the ComfyUI tree; keep the test server self-contained
        # (on hosts that have a database at all).
        cli_args = self.comfy_root / "comfy" / "cli_args.py"
        if cli_args.is_file() and "--database-url" in cli_args.read_text(errors="replace"):
            return ["--database-url", "sqlite:///:memory:"]
        return []

    def start(self, timeout: float = 180.0) -> "ComfyServer":
        if self.process is not None:
            raise ServerError("server already started")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log_path, "wb")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        own_packages = host_packages_dir(self.comfy_root)
        if own_packages:  # this host's own front end / templates versions (fetch_comfyui.py)
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(own_packages), env.get("PYTHONPATH")]))
        started = time.monotonic()
        self.process = subprocess.Popen(
            self.command(), cwd=str(self.comfy_root), env=env, stdin=subprocess.DEVNULL,
            stdout=self._log_file, stderr=subprocess.STDOUT, start_new_session=True,
            # A parent started in the background (no job control) ignores SIGINT and so would the server;
            # SIGINT is how it is stopped cleanly, so the server gets the default disposition back.
            preexec_fn=_default_sigint,
        )
        atexit.register(self.stop)
        deadline = started + timeout
        try:
            while True:
                if self.process.poll() is not None:
                    raise ServerError(f"ComfyUI exited with code {self.process.returncode} during startup; "
                                      f"log {self.log_path}:\n{self.log_tail()}")
                try:
                    status, _ = self._request("GET", "/system_stats", timeout=5)
                    if status == 200:
                        break
                except (urllib.error.URLError, ConnectionError, socket.timeout, TimeoutError):
                    pass
                if time.monotonic() > deadline:
                    raise ServerError(f"ComfyUI did not answer within {timeout:.0f} s; log {self.log_path}:\n{self.log_tail()}")
                time.sleep(0.25)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        self.startup_log = self.log_text()
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 20.0) -> int | None:
        """Stop the server: SIGINT (ComfyUI's clean shutdown), then SIGTERM, then SIGKILL. Idempotent."""
        process = self.process
        if process is not None and process.poll() is None:
            for sig, wait_s in ((signal.SIGINT, timeout), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                try:
                    # The server runs in its own session (start_new_session): its group id is its pid.
                    os.killpg(process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    process.wait(timeout=wait_s)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return process.returncode if process is not None else None

    def __enter__(self) -> "ComfyServer":
        return self if self.process is not None else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_text(self) -> str:
        """The server's output as plain lines on every host (ComfyUI 0.33 colours each logged line and tags
        it "[INFO] ", "[ERROR] ", ...; both are taken off, as 0.3.75 writes them)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return _LEVEL_TAG.sub("", _ANSI_ESCAPE.sub("", text))

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    # ---- HTTP ------------------------------------------------------------------------------------------
    def _request(self, method: str, path: str, body: Any = None, timeout: float = 30.0) -> tuple[int, Any]:
        data = None
        headers = {}
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, raw, ctype = response.status, response.read(), response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as error:
            status, raw, ctype = error.code, error.read(), error.headers.get("Content-Type", "")
        if "json" in ctype:
            return status, json.loads(raw or b"null")
        return status, raw

    def get_json(self, path: str, timeout: float = 30.0) -> Any:
        status, body = self._request("GET", path, timeout=timeout)
        if status != 200:
            raise ServerError(f"GET {path} answered {status}: {str(body)[:500]}")
        return body

    def object_info(self, node_class: str | None = None) -> dict:
        """GET /object_info (all nodes) or /object_info/{node_class} (that node only: {node_class: info})."""
        path = "/object_info" if node_class is None else f"/object_info/{urllib.parse.quote(node_class)}"
        return self.get_json(path, timeout=60)

    def submit(self, prompt: Mapping[str, Any], extra_data: Mapping[str, Any] | None = None) -> tuple[int, Any]:
        """POST /prompt and return (status, decoded body) without judging them."""
        body = {"prompt": prompt, "client_id": self.client_id}
        if extra_data:
            body["extra_data"] = dict(extra_data)
        return self._request("POST", "/prompt", body)

    def queue(self, prompt: Mapping[str, Any], extra_data: Mapping[str, Any] | None = None) -> str:
        """Queue an API-format prompt; return its prompt_id. Raises PromptRejected on a validation error."""
        status, body = self.submit(prompt, extra_data)
        if status != 200 or not isinstance(body, dict) or "prompt_id" not in body or body.get("node_errors"):
            raise PromptRejected(status, body)
        return body["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = 120.0, poll: float = 0.1, check: bool = True) -> dict:
        """Poll /history/{prompt_id} until the prompt has finished; return its history entry.

        With `check`, an execution error raises ExecutionFailed. Raises ServerError when the server dies and
        TimeoutError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            history = self.get_json(f"/history/{urllib.parse.quote(prompt_id)}")
            entry = history.get(prompt_id) if isinstance(history, dict) else None
            if entry and entry.get("status", {}).get("completed") is not None:
                status = entry["status"]
                if check and (status.get("status_str") != "success" or not status.get("completed")):
                    raise ExecutionFailed(prompt_id, entry)
                return entry
            if not self.alive():
                raise ServerError(f"the server died while running {prompt_id}; log {self.log_path}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"prompt {prompt_id} not finished after {timeout:.0f} s; log tail:\n{self.log_tail()}")
            time.sleep(poll)

    def run(self, prompt: Mapping[str, Any], timeout: float = 120.0) -> dict:
        """queue + wait: the finished history entry of a successful run."""
        return self.wait(self.queue(prompt), timeout=timeout)

    # ---- outputs ---------------------------------------------------------------------------------------
    @staticmethod
    def output_images(entry: Mapping[str, Any], node_id: str | None = None, kind: str = "output") -> list[dict]:
        """Image references ({filename, subfolder, type}) of a history entry, in node then batch order."""
        refs = []
        for nid, outputs in entry.get("outputs", {}).items():
            if node_id is not None and str(nid) != str(node_id):
                continue
            refs.extend(ref for ref in outputs.get("images", []) if ref.get("type") == kind)
        return refs

    def image_path(self, ref: Mapping[str, str]) -> Path:
        return self.base_dir / ref.get("type", "output") / ref.get("subfolder", "") / ref["filename"]

    def view(self, ref: Mapping[str, str]) -> bytes:
        """The bytes of an image as the front end fetches it (GET /view)."""
        query = urllib.parse.urlencode({"filename": ref["filename"], "subfolder": ref.get("subfolder", ""),
                                        "type": ref.get("type", "output")})
        status, body = self._request("GET", f"/view?{query}")
        if status != 200:
            raise ServerError(f"GET /view?{query} answered {status}")
        return body


# The pack's node ids and folder name contain "StyleAl"; its files are under REPO_ROOT — but the host
# extracted into REPO_ROOT/.cache is not the pack (its paths are blanked out before matching).
_PACK_MARKER = re.compile(r"styleal|" + re.escape(str(REPO_ROOT)) + r"(?!/\.cache)(/|\b)", re.IGNORECASE)
_HOST_PATHS = (str(REPO_ROOT / ".cache"),)
_PROBLEM_WORDS = re.compile(r"warn|error|fail|exception|traceback|deprecat|cannot|could not|missing", re.IGNORECASE)


def pack_log_problems(log: str) -> list[str]:
    """Lines of a server log that are a warning or error from (or about) this pack.

    A line counts when it mentions the pack (its node ids contain "StyleAl", its folder, this repository's
    path) and a problem word; a traceback counts as a whole when any of its lines mentions the pack."""
    def mentions_pack(text: str) -> bool:
        for host_path in _HOST_PATHS:
            text = text.replace(host_path, "<host>")
        return bool(_PACK_MARKER.search(text))

    problems: list[str] = []
    lines = log.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("Traceback"):
            block = [line]
            i += 1
            while i < len(lines) and (lines[i].startswith((" ", "\t")) or not lines[i].strip() or lines[i].startswith("During handling")
                                      or lines[i].startswith("Traceback") or lines[i - 1].startswith("Traceback")):
                block.append(lines[i])
                i += 1
            if i < len(lines):
                block.append(lines[i])  # the exception line
                i += 1
            if mentions_pack("\n".join(block)):
                problems.append("\n".join(block))
            continue
        if mentions_pack(line) and _PROBLEM_WORDS.search(line):
            problems.append(line)
        i += 1
    return problems


@contextlib.contextmanager
def comfy_server(
    base_dir: Path | None = None,
    checkpoints: Mapping[str, Path] | None = None,
    controlnets: Mapping[str, Path] | None = None,
    inputs: Mapping[str, Path] | None = None,
    models: Mapping[str, Mapping[str, Path]] | None = None,
    custom_nodes: Mapping[str, Path] | None = None,
    log_path: Path | None = None,
    extra_args: tuple[str, ...] = (),
    startup_timeout: float = 180.0,
    keep_base_dir: bool = True,
    cpu: bool = True,
    comfy_root: Path | None = None,
) -> Iterator[ComfyServer]:
    """Start a ComfyUI server with this pack for the duration of a `with` block (stopped in any case)."""
    made_temp = base_dir is None
    base = Path(tempfile.mkdtemp(prefix="comfy-stylealigned-")) if made_temp else Path(base_dir)
    prepare_base_directory(base, checkpoints, controlnets, inputs, models, custom_nodes)
    server = ComfyServer(base, log_path=log_path, extra_args=extra_args, cpu=cpu, comfy_root=comfy_root)
    try:
        for attempt in range(3):
            try:
                server.start(timeout=startup_timeout)
                break
            except ServerError:
                # The free port can be taken between choosing it and the server binding it: choose again.
                if attempt == 2 or "address already in use" not in server.log_text().lower():
                    raise
                server = ComfyServer(base, log_path=log_path, extra_args=extra_args, cpu=cpu, comfy_root=comfy_root)
        yield server
    finally:
        server.stop()
        if made_temp and not keep_base_dir:
            shutil.rmtree(base, ignore_errors=True)


def check_host_starts(comfy_root: Path) -> list[str]:
    """Start the server on this ComfyUI tree with the pack and return what a newcomer would see go wrong at
    start-up: every "IMPORT FAILED" line (a module the set-up did not install, a node pack that broke)."""
    with comfy_server(comfy_root=Path(comfy_root), keep_base_dir=False) as server:
        log = server.startup_log
    return [line.strip() for line in log.splitlines() if "IMPORT FAILED" in line]


def _check_main(roots: list[str]) -> int:
    status = 0
    for root in roots:
        started = time.monotonic()
        try:
            failures = check_host_starts(Path(root))
        except ServerError as error:
            failures = [str(error)]
        for failure in failures:
            print(f"[setup] {root}: {failure}", file=sys.stderr)
        print(f"[setup] {root}: {'FAILED' if failures else 'starts with the pack, every node module imported'}"
              f" ({time.monotonic() - started:.0f} s)")
        status |= bool(failures)
    return status


if __name__ == "__main__" and sys.argv[1:2] == ["--check"]:
    # tests/host/setup.sh: `python tests/host/server.py --check HOST_ROOT...`
    sys.exit(_check_main(sys.argv[2:]))
elif __name__ == "__main__":
    # Manual use: start a server with the tiny models and keep it up until Ctrl-C.
    from host.tiny_checkpoint import TINY_CHECKPOINT_NAME, TINY_CONTROLNET_NAME, ensure_tiny_models

    models = ensure_tiny_models()
    with comfy_server(checkpoints={TINY_CHECKPOINT_NAME: models.checkpoint},
                      controlnets={TINY_CONTROLNET_NAME: models.controlnet}) as running:
        print(f"ComfyUI with StyleAligned at {running.url} (base {running.base_dir}, log {running.log_path}); Ctrl-C stops it")
        with contextlib.suppress(KeyboardInterrupt):
            while running.alive():
                time.sleep(1)
