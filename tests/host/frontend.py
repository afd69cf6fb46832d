"""Drive the real ComfyUI front end (the server's web page) in headless Chromium through selenium.

    with FrontEnd(server.url) as page:
        result = page.load_workflow(ui_json, name="my_workflow", screenshot=path)
        assert result.problems() == []
        api_prompt = result.api_prompt          # `await app.graphToPrompt()` → output, in the page

`load_workflow` loads a UI-format workflow with `window.app.loadGraphData(json)` and reports what a user
would see go wrong: node types the front end does not know, alerts (the toast store's addAlert, which is how
"Invalid workflow against zod schema" appears; window.alert), warning/error toasts, dialogs left open
(e.g. "missing nodes"), console errors and warnings; it keeps a screenshot and converts the graph to the
API form in the page. A fresh profile opens a Templates dialog on first load; it is closed before anything
else happens.

Run as a script it regenerates the API twins of UI workflows with the front end's own conversion:

    python tests/host/frontend.py workflows/stylealigned_sd15_set.json ...   # writes workflows/api/<name>.json
    python tests/host/frontend.py --all                                     # every workflows/*.json
    python tests/host/frontend.py --all --resave    # also rewrite the UI files as the front end exports them

`FrontEnd.build_workflow` builds a graph in the page from a short spec with the front end's own node classes;
tests/host/build_workflows.py makes the shipped workflows with it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMEDRIVER_NAMES = ("chromedriver",)
CHROMEDRIVER_FALLBACKS = ("/usr/lib/chromium/chromedriver", "/usr/lib/chromium-browser/chromedriver")
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage",
)
TEMPLATES_DIALOG = "global-workflow-template-selector"
# Front end 1.32 (ComfyUI 0.3.75) draws dialogs as PrimeVue `.p-dialog`; 1.49 (ComfyUI 0.33) as its own
# `div[role=dialog]` (same aria-labelledby keys, same × button).
DIALOG_SELECTOR = ".p-dialog, [role=dialog]"
TEMPLATES_SELECTOR = f'.p-dialog[aria-labelledby="{TEMPLATES_DIALOG}"], [role=dialog][aria-labelledby="{TEMPLATES_DIALOG}"]'

# Installed before a workflow is loaded: records alerts, toasts and console warnings/errors in the page.
_HOOKS_JS = """
const record = window.__sa_record || (window.__sa_record = {alerts: [], toasts: [], console: []});
record.alerts.length = 0; record.toasts.length = 0; record.console.length = 0;
if (!window.__sa_hooked) {
  window.__sa_hooked = true;
  const text = (v) => { try { return typeof v === 'string' ? v : (v instanceof Error ? v.stack || String(v) : JSON.stringify(v)); } catch (e) { return String(v); } };
  window.alert = (message) => record.alerts.push(String(message));
  for (const level of ['error', 'warn']) {
    const original = console[level].bind(console);
    console[level] = (...args) => { record.console.push({level, text: args.map(text).join(' ')}); original(...args); };
  }
  window.addEventListener('error', (event) => record.console.push({level: 'uncaught', text: String(event.message)}));
  window.addEventListener('unhandledrejection', (event) => record.console.push({level: 'unhandledrejection', text: text(event.reason)}));
  const toast = window.app && window.app.extensionManager && window.app.extensionManager.toast;
  if (toast && toast.$onAction) {
    toast.$onAction(({name, args}) => {
      if (name === 'addAlert') record.toasts.push({severity: 'alert', text: String(args[0])});
      else if (name === 'add') { const m = args[0] || {}; record.toasts.push({severity: String(m.severity), text: [m.summary, m.detail].filter(Boolean).map(text).join(': ')}); }
    });
  }
}
return true;
"""

_OPEN_DIALOGS_JS = """
return Array.from(document.querySelectorAll('%s')).filter(e => e.offsetParent !== null || e.getClientRects().length)
  .map(e => ({key: e.getAttribute('aria-labelledby') || '', text: (e.innerText || '').slice(0, 500)}));
""" % DIALOG_SELECTOR

_LOAD_JS = """
const [workflow, name, done] = arguments;
const types = new Set();
const collect = (nodes) => { for (const node of nodes || []) types.add(node.type); };
collect(workflow.nodes);
for (const sub of (workflow.definitions && workflow.definitions.subgraphs) || []) collect(sub.nodes);
const missing = [...types].filter(type => !(type in LiteGraph.registered_node_types)).sort();
window.app.loadGraphData(workflow, true, true, name).then(
  () => requestAnimationFrame(() => requestAnimationFrame(() => done({ok: true, missing}))),
  (error) => done({ok: false, missing, error: String(error && (error.stack || error))}));
"""

_GRAPH_STATE_JS = """
const nodes = window.app.graph.nodes;
return {
  node_count: nodes.length,
  link_count: Object.keys(window.app.graph.links || {}).length,
  nodes_with_errors: nodes.filter(n => n.has_errors).map(n => `${n.id}:${n.type}`),
};
"""

# Returned as JSON text: the WebDriver transport would not keep the front end's key order.
_GRAPH_TO_PROMPT_JS = """
const done = arguments[arguments.length - 1];
window.app.graphToPrompt().then(
  (result) => done({ok: true, output: JSON.stringify(result.output), workflow: JSON.stringify(result.workflow)}),
  (error) => done({ok: false, error: String(error && (error.stack || error))}));
"""

# Builds a graph in the page from a spec (see FrontEnd.build_workflow) with the front end's own node classes,
# fits the view to it, and returns the workflow as the front end exports it (graphToPrompt().workflow).
_BUILD_JS = r"""
const [spec, viewport, done] = arguments;
(async () => {
  app.graph.clear();
  const nodes = {};
  for (const s of spec.nodes) {
    const node = LiteGraph.createNode(s.type);
    if (!node) throw new Error(`unknown node type ${s.type}`);
    node.id = s.id;
    app.graph.add(node);
    if (node.id !== s.id) throw new Error(`node ${s.type} got id ${node.id}, not ${s.id}`);
    if (s.title) node.title = s.title;
    for (const [name, value] of Object.entries(s.widgets || {})) {
      const widget = (node.widgets || []).find(w => w.name === name);
      if (!widget) throw new Error(`${s.type} has no widget ${name} (has ${(node.widgets || []).map(w => w.name)})`);
      widget.value = value;
    }
    if (s.color) node.color = s.color;
    if (s.bgcolor) node.bgcolor = s.bgcolor;
    const min = node.computeSize();
    const size = s.size || min;
    node.size = [Math.max(size[0], min[0]), Math.max(size[1], min[1])];
    node.pos = s.pos;
    nodes[s.id] = node;
  }
  for (const [from, output, to, input] of spec.links) {
    const source = nodes[from], target = nodes[to];
    const slot = typeof output === 'number' ? output : source.findOutputSlot(output);
    const targetSlot = target.findInputSlot(input);
    if (slot < 0 || targetSlot < 0) throw new Error(`no slot for link ${from}.${output} -> ${to}.${input}`);
    if (!source.connect(slot, target, targetSlot)) throw new Error(`could not link ${from}.${output} -> ${to}.${input}`);
  }
  for (const g of spec.groups || []) {
    const group = new LiteGraph.LGraphGroup(g.title);
    group.pos = [g.bounding[0], g.bounding[1]];
    group.size = [g.bounding[2], g.bounding[3]];
    if (g.color) group.color = g.color;
    app.graph.add(group);
  }
  // The view a user gets on opening the file: the whole graph, at most 1:1.
  let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
  for (const node of app.graph.nodes) {
    x0 = Math.min(x0, node.pos[0]); y0 = Math.min(y0, node.pos[1] - LiteGraph.NODE_TITLE_HEIGHT);
    x1 = Math.max(x1, node.pos[0] + node.size[0]); y1 = Math.max(y1, node.pos[1] + node.size[1]);
  }
  for (const group of app.graph.groups || []) {
    x0 = Math.min(x0, group.pos[0]); y0 = Math.min(y0, group.pos[1]);
    x1 = Math.max(x1, group.pos[0] + group.size[0]); y1 = Math.max(y1, group.pos[1] + group.size[1]);
  }
  const [left, top, width, height] = viewport;
  const scale = Math.floor(1000 * Math.min(1, width / (x1 - x0), height / (y1 - y0))) / 1000;
  app.canvas.ds.scale = scale;
  app.canvas.ds.offset = [Math.round(left / scale - x0), Math.round(top / scale - y0)];
  app.canvas.setDirty(true, true);
  const result = await app.graphToPrompt();
  return {ok: true, workflow: JSON.stringify(result.workflow), output: JSON.stringify(result.output)};
})().then(done, (error) => done({ok: false, error: String(error && (error.stack || error))}));
"""

# Closes open dialogs with their own close (×) buttons; returns the keys of those that stay open.
_CLOSE_DIALOGS_JS = """
const visible = (e) => e.offsetParent !== null || e.getClientRects().length > 0;
for (const dialog of document.querySelectorAll('%s')) {
  const button = dialog.querySelector('.p-dialog-close-button') || Array.from(dialog.querySelectorAll('button')).find(
    b => visible(b) && b.querySelector('.pi-times, [class*="lucide--x"]'));
  if (button) button.click();
}
return true;
""" % DIALOG_SELECTOR

# The "Introducing Nodes 2.0" banner over the top of the canvas: dismissed so screenshots show the graph.
_DISMISS_BANNER_JS = r"""
for (const button of document.querySelectorAll('button')) {
  const r = button.getBoundingClientRect();
  if (r.top < 45 && button.querySelector('[class*="lucide--x"]') && /Nodes 2\.0/.test(button.parentElement.innerText || '')) { button.click(); return true; }
}
return false;
"""


class BrowserUnavailable(RuntimeError):
    """Chromium, chromedriver or selenium is not installed."""


def find_browser() -> tuple[str, str]:
    """(chromium binary, chromedriver) paths; raises BrowserUnavailable with the reason."""
    try:
        import selenium  # noqa: F401
    except ImportError as error:
        raise BrowserUnavailable(f"selenium is not installed ({error})") from error
    chromium = next((shutil.which(name) for name in CHROMIUM_NAMES if shutil.which(name)), None)
    driver = next((shutil.which(name) for name in CHROMEDRIVER_NAMES if shutil.which(name)), None)
    driver = driver or next((path for path in CHROMEDRIVER_FALLBACKS if Path(path).is_file()), None)
    if not chromium:
        raise BrowserUnavailable(f"no Chromium found on PATH (looked for {', '.join(CHROMIUM_NAMES)})")
    if not driver:
        raise BrowserUnavailable("no chromedriver found (PATH, " + ", ".join(CHROMEDRIVER_FALLBACKS) + ")")
    return chromium, driver


@dataclass
class LoadResult:
    name: str
    missing_node_types: list[str]
    alerts: list[str]
    toasts: list[dict]
    console: list[dict]
    dialogs: list[dict]
    node_count: int
    link_count: int
    nodes_with_errors: list[str]
    api_prompt: dict | None = None
    converted_workflow: dict | None = None
    screenshot: Path | None = None
    load_error: str | None = None
    notes: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        """Everything a user would see go wrong on loading the workflow (empty when it loads cleanly)."""
        found = []
        if self.load_error:
            found.append(f"loadGraphData failed: {self.load_error}")
        if self.missing_node_types:
            found.append(f"missing node types: {self.missing_node_types}")
        found += [f"alert: {text}" for text in self.alerts]
        found += [f"toast ({t['severity']}): {t['text']}" for t in self.toasts if t["severity"] not in ("success", "info")]
        found += [f"console {c['level']}: {c['text'][:1000]}" for c in self.console]
        found += [f"dialog open: {d['key'] or d['text'][:200]}" for d in self.dialogs]
        if self.nodes_with_errors:
            found.append(f"nodes with errors: {self.nodes_with_errors}")
        return found


class FrontEnd:
    """A headless Chromium page on the server's front end (fresh user-data-dir each time)."""

    def __init__(self, url: str, window_size: tuple[int, int] = (1600, 1000), timeout: float = 60.0):
        self.url = url.rstrip("/")
        self.window_size = window_size
        self.timeout = timeout
        self.driver = None
        self._profile: str | None = None
        self.templates_dialog_closed = False

    # ---- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> "FrontEnd":
        chromium, chromedriver = find_browser()
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self._profile = tempfile.mkdtemp(prefix="stylealigned-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self._profile}")
        options.add_argument(f"--window-size={self.window_size[0]},{self.window_size[1]}")
        self.driver = webdriver.Chrome(service=Service(chromedriver), options=options)
        try:
            self.driver.set_script_timeout(self.timeout)
            self.driver.set_page_load_timeout(self.timeout)
            self.open()
        except BaseException:
            self.close()
            raise
        return self

    def open(self) -> None:
        """Load the page, wait for the app, close the first-run Templates dialog, install the hooks."""
        expect_templates = not self._server_setting("Comfy.TutorialCompleted")
        # Front end 1.32 validates a loaded workflow against its zod schema by default; 1.49 has the same check
        # behind this setting, off by default: on, so every front end applies the stricter check.
        self._set_server_setting("Comfy.Validation.Workflows", True)
        self.driver.get(self.url + "/")
        self._wait_for("!!(window.app && window.app.graph && window.app.canvas && window.LiteGraph && "
                       "window.app.extensionManager && window.app.extensionManager.toast)", "the app to start")
        if expect_templates:  # opened asynchronously after the app starts; a front end that no longer opens it is fine
            try:
                self._wait_for(f"!!document.querySelector('{TEMPLATES_SELECTOR}')",
                               "the first-run Templates dialog", timeout=20)
            except TimeoutError:
                pass
        self.close_templates_dialog()
        self.driver.execute_script(_DISMISS_BANNER_JS)
        self.driver.execute_script(_HOOKS_JS)

    def close(self) -> None:
        if self.driver is not None:
            try:
                self.driver.quit()
            finally:
                self.driver = None
        if self._profile:
            shutil.rmtree(self._profile, ignore_errors=True)
            self._profile = None

    def __enter__(self) -> "FrontEnd":
        return self if self.driver is not None else self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- helpers ---------------------------------------------------------------------------------------
    def _server_setting(self, key: str) -> Any:
        try:
            with urllib.request.urlopen(f"{self.url}/settings/{key}", timeout=10) as response:
                return json.loads(response.read() or b"null")
        except Exception:
            return None

    def _set_server_setting(self, key: str, value: Any) -> None:
        request = urllib.request.Request(f"{self.url}/settings/{key}", data=json.dumps(value).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def _wait_for(self, js_condition: str, what: str, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            try:
                if self.driver.execute_script(f"return {js_condition};"):
                    return
            except Exception:  # the page may still be loading its scripts
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what} at {self.url}")
            time.sleep(0.1)

    def open_dialogs(self) -> list[dict]:
        return self.driver.execute_script(_OPEN_DIALOGS_JS)

    def close_dialogs(self, timeout: float = 5.0) -> None:
        """Close every open dialog (e.g. "missing nodes" left by the previous load); reload the page when one
        will not close, so each load starts from a clean page."""
        if not self.open_dialogs():
            return
        self.driver.execute_script(_CLOSE_DIALOGS_JS)
        try:
            self._wait_for(f"document.querySelectorAll('{DIALOG_SELECTOR}').length === 0", "dialogs to close", timeout=timeout)
        except TimeoutError:
            self.open()

    def close_templates_dialog(self) -> bool:
        """Close the Templates dialog if it is open (its × button); True when one was closed."""
        selector = TEMPLATES_SELECTOR
        clicked = self.driver.execute_script(f"""
            const dialog = document.querySelector('{selector}');
            if (!dialog) return false;
            const button = Array.from(dialog.querySelectorAll('button')).find(
                b => b.offsetParent !== null && b.querySelector('.pi-times, [class*="lucide--x"]'));
            if (!button) return null;
            button.click();
            return true;""")
        if clicked is None:
            raise RuntimeError("the Templates dialog has no visible close button")
        if clicked:
            self._wait_for(f"!document.querySelector('{selector}')", "the Templates dialog to close", timeout=10)
            self.templates_dialog_closed = True
        return bool(clicked)

    # ---- the job ---------------------------------------------------------------------------------------
    def load_workflow(self, workflow: dict | str | Path, name: str | None = None, screenshot: Path | None = None,
                      settle_s: float = 0.5) -> LoadResult:
        """Load a UI-format workflow as a user would, collect what went wrong, screenshot, convert to API."""
        if isinstance(workflow, (str, Path)):
            name = name or Path(workflow).stem
            workflow = json.loads(Path(workflow).read_text())
        name = name or "workflow"
        self.close_templates_dialog()
        self.close_dialogs()
        self.driver.execute_script(_HOOKS_JS)
        loaded = self.driver.execute_async_script(_LOAD_JS, workflow, name)
        time.sleep(settle_s)  # toasts and dialogs are shown asynchronously after the load resolves
        record = self.driver.execute_script("return window.__sa_record;")
        state = self.driver.execute_script(_GRAPH_STATE_JS)
        result = LoadResult(
            name=name,
            missing_node_types=loaded.get("missing", []),
            alerts=list(record["alerts"]),
            toasts=list(record["toasts"]),
            console=list(record["console"]),
            dialogs=self.open_dialogs(),
            node_count=state["node_count"],
            link_count=state["link_count"],
            nodes_with_errors=state["nodes_with_errors"],
            load_error=None if loaded.get("ok") else loaded.get("error", "unknown error"),
        )
        if screenshot is not None:
            screenshot = Path(screenshot)
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            self.driver.save_screenshot(str(screenshot))
            result.screenshot = screenshot
        converted = self.driver.execute_async_script(_GRAPH_TO_PROMPT_JS)
        if converted.get("ok"):
            result.api_prompt = json.loads(converted["output"])
            result.converted_workflow = json.loads(converted["workflow"])
        else:
            result.notes.append(f"graphToPrompt failed: {converted.get('error')}")
        return result

    def build_workflow(self, spec: dict, viewport: tuple[int, int, int, int] = (80, 90, 1480, 730)) -> dict:
        """Build a graph in the page from `spec` and return it as the front end exports it (UI format).

        spec: {"nodes": [{"id", "type", "pos", "size"?, "title"?, "widgets": {name: value}?, "color"?,
        "bgcolor"?}], "links": [(from_id, output name or index, to_id, input name)], "groups"?: [{"title",
        "bounding": [x, y, w, h], "color"?}]}. Nodes are made with LiteGraph.createNode (so every input,
        optional inputs and widget sockets included, is what the front end itself creates), widgets are set
        by name, links are made with node.connect (a widget's socket takes a link: a "converted widget").
        The saved view (extra.ds) shows the whole graph in the screen rectangle `viewport` (left, top, width,
        height): the canvas of a 1600×1000 window less the side bar, the top bar and some margin."""
        self.close_templates_dialog()
        self.close_dialogs()
        built = self.driver.execute_async_script(_BUILD_JS, spec, list(viewport))
        if not built.get("ok"):
            raise RuntimeError(f"building the graph failed: {built.get('error')}")
        return json.loads(built["workflow"])


def save_as_exported(page: FrontEnd, ui_path: Path, workflow: dict, max_rounds: int = 4) -> LoadResult:
    """Write `workflow` to `ui_path` as the front end exports it: write, load like a user's file, and write
    the front end's export of it (graphToPrompt's `workflow`) until loading and exporting give the file back
    unchanged. Returns the last load (its api_prompt is the API twin). Raises if the file does not load
    cleanly or does not settle."""
    ui_path = Path(ui_path)
    for _ in range(max_rounds):
        ui_path.write_text(json.dumps(workflow, indent=2, ensure_ascii=False) + "\n")
        result = page.load_workflow(ui_path)
        if result.problems():
            raise RuntimeError(f"{ui_path.name} does not load cleanly:\n  " + "\n  ".join(result.problems()))
        if result.converted_workflow is None:
            raise RuntimeError(f"{ui_path.name}: no export ({result.notes})")
        if result.converted_workflow == workflow:
            return result
        workflow = result.converted_workflow
    raise RuntimeError(f"{ui_path.name}: loading and exporting the workflow does not settle after {max_rounds} rounds")


def write_api_twin(result: LoadResult, api_path: Path) -> Path:
    if result.api_prompt is None:
        raise RuntimeError(f"{result.name}: no API form ({result.notes})")
    api_path.parent.mkdir(parents=True, exist_ok=True)
    api_path.write_text(json.dumps(result.api_prompt, indent=2, ensure_ascii=False) + "\n")
    return api_path


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="Regenerate API twins of UI workflows with the front end's own conversion.")
    parser.add_argument("workflows", nargs="*", type=Path, help="UI workflow files (default with --all: workflows/*.json)")
    parser.add_argument("--all", action="store_true", help="every workflows/*.json")
    parser.add_argument("--screenshots", type=Path, default=None, help="folder for a screenshot of each loaded graph")
    parser.add_argument("--resave", action="store_true",
                        help="also rewrite each UI file as the front end exports it (after hand edits, or when a node "
                             "gained inputs); the browser test expects the shipped files in that form")
    options = parser.parse_args(argv)

    if __package__:
        from .api_workflows import API_WORKFLOWS_DIR, WORKFLOWS_DIR
        from .server import comfy_server
    else:
        here = Path(__file__).resolve().parent
        sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
        sys.path.insert(0, str(here.parent))
        from host.api_workflows import API_WORKFLOWS_DIR, WORKFLOWS_DIR
        from host.server import comfy_server

    paths = list(options.workflows) or (sorted(WORKFLOWS_DIR.glob("*.json")) if options.all else [])
    if not paths:
        parser.error("name UI workflow files or use --all")
    failed = False
    with comfy_server() as server, FrontEnd(server.url) as page:
        for path in paths:
            shot = options.screenshots / f"{path.stem}.png" if options.screenshots else None
            if options.resave:
                try:
                    save_as_exported(page, path, json.loads(Path(path).read_text()))
                except RuntimeError as error:
                    failed = True
                    print(f"{path}: NOT rewritten: {error}", file=sys.stderr)
                    continue
            result = page.load_workflow(path, screenshot=shot)
            if result.problems():
                failed = True
                print(f"{path}: NOT written, the front end reports:\n  " + "\n  ".join(result.problems()), file=sys.stderr)
                continue
            print(f"{path} -> {write_api_twin(result, API_WORKFLOWS_DIR / path.name)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
