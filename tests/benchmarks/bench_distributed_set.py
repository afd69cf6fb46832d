"""Wall time of one style-aligned set on one ComfyUI server against a master + 1 worker (ComfyUI-Distributed).

    python tests/benchmarks/bench_distributed_set.py                       # 64×64, 3 steps, 1 thread per server
    python tests/benchmarks/bench_distributed_set.py --size 128 --steps 10 --threads 2 --repeats 5

Two real servers on 127.0.0.1 (CPU, the tiny SD1.5-layout checkpoint, ComfyUI-Distributed from its tarball as
in tests/e2e/test_distributed_set.py). The same set, the shipped 8-prompt workflows at 3 images per batch
(4 batches, the reference sampled in each): `stylealigned_sd15_large_set` queued on the master alone (POST
/prompt; the worker idles), and `stylealigned_sd15_distributed_set` queued with the worker
(POST /distributed/queue: 2 batches each). Each server's torch gets `--threads` threads (OMP_NUM_THREADS), so
on a machine with 2 × threads free cores the two servers stand for two devices. Both are warmed up first (model
loads); every timed run has a new seed (no cache), one-server and distributed runs alternate. Times are from
queueing to the saved set. A benchmark, not a test: it prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS_DIR))

from host import distributed  # noqa: E402
from host.api_workflows import API_WORKFLOWS_DIR, adapt_for_tiny_models, load_prompt, nodes_of  # noqa: E402
from host.server import ComfyServer, prepare_base_directory  # noqa: E402
from host.tiny_checkpoint import TINY_CHECKPOINT_NAME, ensure_tiny_models  # noqa: E402


def workflow(name: str, size: int, steps: int, seed: int) -> dict:
    prompt = adapt_for_tiny_models(load_prompt(API_WORKFLOWS_DIR / f"{name}.json"), TINY_CHECKPOINT_NAME, size=size,
                                   max_steps=steps, filename_prefix=f"bench/{name}_{seed}")
    for nid in nodes_of(prompt, "KSampler"):
        prompt[nid]["inputs"]["seed"] = seed
        prompt[nid]["inputs"]["steps"] = steps
    return prompt


def timed(server: ComfyServer, run) -> float:
    started = time.monotonic()
    prompt_id = run()
    server.wait(prompt_id, timeout=3600)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per server (OMP_NUM_THREADS)")
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()
    if distributed.find_tarball() is None:
        print(distributed.missing_reason())
        return 1
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(options.threads)
    models = ensure_tiny_models()
    root = Path(tempfile.mkdtemp(prefix="bench-distributed-"))
    servers = []
    try:
        for role in ("master", "worker"):
            base = prepare_base_directory(root / role, checkpoints={TINY_CHECKPOINT_NAME: models.checkpoint})
            distributed.install(base)
            servers.append(ComfyServer(base).start())
        master, worker = servers
        distributed.register_worker(master, worker.port)

        def one_server(seed):
            return master.queue(workflow("stylealigned_sd15_large_set", options.size, options.steps, seed))

        def with_worker(seed):
            answer = distributed.queue(master, workflow("stylealigned_sd15_distributed_set", options.size,
                                                        options.steps, seed), ["1"])
            if answer.get("worker_count") != 1:
                raise RuntimeError(f"the worker did not take part: {answer}")
            return answer["prompt_id"]

        timed(master, lambda: one_server(1))  # warm-up: model loads on both servers
        timed(master, lambda: with_worker(1))
        times = {"one server": [], "master + 1 worker": []}
        for repeat in range(options.repeats):
            seed = 100 + repeat
            order = [("one server", one_server), ("master + 1 worker", with_worker)]
            for label, run in order if repeat % 2 == 0 else reversed(order):
                times[label].append(timed(master, lambda: run(seed)))
        print(f"8 images ({options.size}×{options.size}, {options.steps} steps, euler), 3 per batch (4 batches); "
              f"{options.threads} torch thread(s) per server, {os.cpu_count()} CPU(s), load average "
              f"{os.getloadavg()[0]:.1f}")
        for label, values in times.items():
            median = statistics.median(values)
            print(f"{label:>18}: median {median:6.2f} s ({median / 8:5.2f} s per image)  runs "
                  + ", ".join(f"{value:.2f}" for value in values))
        ratio = statistics.median(times["one server"]) / statistics.median(times["master + 1 worker"])
        print(f"speed-up with the worker: {ratio:.2f}×")
    finally:
        for server in servers:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
