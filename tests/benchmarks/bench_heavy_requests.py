"""Peak memory of the two heavy requests of issue 21: a prompt batch with one huge line, a large set scored.

    python tests/benchmarks/bench_heavy_requests.py                         # every request below
    python tests/benchmarks/bench_heavy_requests.py --requests score-160    # one of them

Each request runs in a fresh child process on the in-process host (tests/host/comfy_env.py): the pack's
node is executed directly. What is measured is the process's peak resident set (Linux VmHWM, reset through
/proc/self/clear_refs) above its resident set just before the node runs, plus the size of what the node
returns. Requests:
- prompts-41: 40 short lines plus one ~20 KB line (the issue's probe), on a random CLIP with SD1.5's real
  output width (768; the host's real tokenizer);
- prompts-6: 5 short lines plus the same ~20 KB line (about 5,160 tokens: within the pack's token budget);
- prompts-200: 200 short lines (77 tokens each);
- score-N: StyleAligned Set Score on N random 32x32 pictures with a tiny random CLIP vision encoder.
A refused request prints its error's first words. A benchmark, not a test: it prints figures and asserts
nothing. Run it from a checkout of main (with this file and tests/host copied in) for the "before" figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parents[1]
REQUESTS = ("prompts-41", "prompts-6", "prompts-200", "score-160", "score-320")
HUGE_LINE = "a long tale of toys " * 1000  # 20,000 characters, about 5,160 CLIP tokens


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _prompt_lines(request: str) -> str:
    short = {"prompts-41": 40, "prompts-6": 5, "prompts-200": 200}[request]
    lines = [f"a toy number {i}" for i in range(short)]
    return "\n".join(lines + ([HUGE_LINE] if request != "prompts-200" else []))


def run_request(request: str) -> dict:
    sys.path.insert(0, str(TESTS_DIR))
    import torch

    from host.comfy_env import load_host
    from host.sampling import node_output

    load_host()
    torch.set_num_threads(1)
    if request.startswith("prompts"):
        from host.tiny_clip import tiny_clip

        clip = tiny_clip("sd15", width=768)
        inputs = {"clip": clip, "prompts": _prompt_lines(request), "style": ""}
        node = "StyleAlignedPromptBatch"
    else:
        from host.tiny_clip_vision import tiny_clip_vision

        count = int(request.split("-")[1])
        images = torch.rand(count, 32, 32, 3, generator=torch.Generator().manual_seed(1))
        inputs = {"images": images, "clip_vision": tiny_clip_vision("clip", seed=3)}
        node = "StyleAlignedSetScore"
    Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS
    before = _status_kib("VmRSS") * 1024
    start = time.perf_counter()
    try:
        result = node_output(node, **inputs).result
        outcome = "ok"
    except Exception as error:  # a refusal is a result here
        result, outcome = None, f"refused: {str(error)[:110]}"
    seconds = time.perf_counter() - start
    peak = _status_kib("VmHWM") * 1024 - before
    if result is None:
        output = "-"
    elif request.startswith("prompts"):
        output = f"conditioning {tuple(result[0][0][0].shape)}"
    else:
        output = f"heatmap {tuple(result[2].shape[1:3])}, set_consistency {result[0]:.4f}"
    return {"request": request, "peak_bytes": peak, "seconds": seconds, "outcome": outcome, "output": output}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", nargs="+", default=list(REQUESTS), choices=REQUESTS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.child:
        print(json.dumps(run_request(options.requests[0])))
        return 0
    print(f"{'request':>12} {'peak above start':>17} {'time':>7}  output / outcome")
    for request in options.requests:
        child = subprocess.run([sys.executable, __file__, "--child", "--requests", request], capture_output=True,
                               text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        if child.returncode != 0:
            print(f"{request:>12} failed: {child.stderr.strip().splitlines()[-1:]}")
            continue
        run = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"{request:>12} {run['peak_bytes'] / 2**20:>13.0f} MiB {run['seconds']:>6.1f}s  {run['output']}  {run['outcome']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
