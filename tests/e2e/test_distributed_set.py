"""One style-aligned set rendered by two real ComfyUI servers with ComfyUI-Distributed: a master and a worker.

Both servers run on 127.0.0.1 (CPU) with this pack, the tiny SD1.5-layout checkpoint and their own copy of
ComfyUI-Distributed 1.4.4 extracted from its tarball (skipped, with the reason, when the tarball is absent).
The worker is registered on the master through the extension's config API, the collector's worker timeout is
set to a few seconds, and the shipped `stylealigned_sd15_distributed_set` (8 prompts, 3 images per batch,
part_count 2) is queued as the front end's Distributed queue button does (POST /distributed/queue).

Checked: the worker really renders part 1 (its own history shows the split's report of batches 3..4); the
master saves the 8 images once, in prompt order, equal within 1/255 to the same set sampled in one batch and
to the shipped large-set workflow on one server; with the worker down the run fails naming the missing part,
and nothing is saved.
"""

from __future__ import annotations

import threading
import time

import pytest
from test_server import RUN_TIMEOUT, SIZE, adapted, images_of, max_abs_diff, the_only

from host import distributed
from host.server import ComfyServer, ExecutionFailed, prepare_base_directory
from host.tiny_checkpoint import TINY_CHECKPOINT_NAME

pytestmark = pytest.mark.skipif(distributed.find_tarball() is None, reason=distributed.missing_reason())

WORKFLOW = "stylealigned_sd15_distributed_set"
LARGE_SET = "stylealigned_sd15_large_set"
SPLIT, ASSEMBLE = "StyleAlignedSplitSet", "StyleAlignedAssembleSet"
WORKER_ID = "1"
WORKER_TIMEOUT_S = 5  # the extension's default is 60 s


@pytest.fixture(scope="module")
def cluster(tiny_models, tmp_path_factory, artifacts_dir):
    """(master, worker): two servers started side by side, the worker registered on the master."""
    servers = []
    for role in ("master", "worker"):
        base = prepare_base_directory(tmp_path_factory.mktemp(f"distributed-{role}"),
                                      checkpoints={TINY_CHECKPOINT_NAME: tiny_models.checkpoint})
        distributed.install(base)
        servers.append(ComfyServer(base))
    errors = []

    def start(server):
        try:
            server.start()
        except BaseException as error:  # reported below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=start, args=(server,)) for server in servers]
    try:
        # One torch thread each: the two servers share this machine's cores instead of fighting over them.
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("OMP_NUM_THREADS", "1")
            patch.setenv("MKL_NUM_THREADS", "1")
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        if errors:
            raise errors[0]
        master, worker = servers
        config = distributed.register_worker(master, worker.port, WORKER_ID)
        assert [(w["id"], w["port"], w["enabled"]) for w in config["workers"]] == [(WORKER_ID, worker.port, True)]
        distributed.set_worker_timeout(master, WORKER_TIMEOUT_S)
        yield master, worker
    finally:
        for server in servers:
            server.stop()
        for role, server in zip(("master", "worker"), servers):
            if server.log_path.is_file():
                (artifacts_dir / f"e2e-distributed-{role}.log").write_bytes(server.log_path.read_bytes())


def split_reports(server: ComfyServer) -> list[str]:
    """The split node's report in every prompt the server has run."""
    history = server.get_json("/history")
    return [output["text"][0] for entry in history.values() for nid, output in entry.get("outputs", {}).items()
            if entry["prompt"][2].get(nid, {}).get("class_type") == SPLIT and output.get("text")]


@pytest.fixture(scope="module")
def distributed_run(cluster) -> dict:
    """The shipped distributed workflow queued on the master with the worker enabled (run once)."""
    master, _ = cluster
    prompt = adapted(WORKFLOW, f"e2e/distributed_{time.time_ns()}")
    started = time.monotonic()
    answer = distributed.queue(master, prompt, [WORKER_ID])
    assert answer["worker_count"] == 1 and not answer.get("node_errors"), answer
    entry = master.wait(answer["prompt_id"], timeout=RUN_TIMEOUT)
    return {"prompt": prompt, "entry": entry, "seconds": time.monotonic() - started,
            "images": images_of(master, entry, the_only(prompt, "SaveImage"))}


def test_master_and_worker_each_render_their_part(cluster, distributed_run):
    master, worker = cluster
    prompt, entry = distributed_run["prompt"], distributed_run["entry"]
    split, assemble = the_only(prompt, SPLIT), the_only(prompt, ASSEMBLE)
    assert prompt[split]["inputs"]["part_count"] == 2 and prompt[split]["inputs"]["images_per_batch"] == 3
    value = prompt[split]["inputs"]["part_index"]
    assert prompt[value[0]]["class_type"] == "DistributedValue"
    assert all(node["class_type"] != "DistributedSeed" for node in prompt.values())
    assert [image.shape for image in distributed_run["images"]] == [(SIZE, SIZE, 3)] * 8
    # The worker rendered part 1 (batches 3 and 4), the master part 0; the assembly took each image once.
    assert any(report.startswith("part 1 of parts 0..1: batches 3..4 of 4") for report in split_reports(worker))
    assert entry["outputs"][split]["text"][0].splitlines()[0] == "part 0 of parts 0..1: batches 1..2 of 4"
    report = entry["outputs"][assemble]["text"][0].splitlines()
    assert report[:2] == ["part 0: images 0, 1, 2, 3, 4", "part 1: images 0, 5, 6, 7"], report
    assert report[2].startswith("references agree")


def test_worker_down_fails_naming_the_missing_part_and_saves_nothing(cluster, distributed_run, unique_prefix):
    master, worker = cluster
    worker.stop()
    prefix = unique_prefix("worker_down")
    prompt = adapted(WORKFLOW, prefix)  # the master's part comes from its cache; the collector runs again
    answer = distributed.queue(master, prompt, [WORKER_ID])
    # ComfyUI-Distributed falls back to the master alone when a worker does not answer its probe.
    assert answer["worker_count"] == 0, answer
    with pytest.raises(ExecutionFailed) as failure:
        master.wait(answer["prompt_id"], timeout=RUN_TIMEOUT)
    message = str(failure.value)
    assert f"{ASSEMBLE}: part(s) [1] of parts 0..1 are missing (received [0])" in message, message
    assert master.output_images(failure.value.entry) == []
    saved = list((master.base_dir / "output").rglob(f"{prefix.rsplit('/', 1)[-1]}*"))
    assert saved == [], f"files saved for a run that failed: {saved}"
    assert master.alive()


def test_set_across_master_and_worker_equals_the_set_on_one_server(cluster, distributed_run, unique_prefix):
    master, _ = cluster
    across = distributed_run["images"]
    one_batch_prompt = adapted(LARGE_SET, unique_prefix("one_batch"))
    one_batch_prompt[the_only(one_batch_prompt, SPLIT)]["inputs"]["images_per_batch"] = 0
    save = the_only(one_batch_prompt, "SaveImage")
    one_batch = images_of(master, master.run(one_batch_prompt, timeout=RUN_TIMEOUT), save)

    large_set_prompt = adapted(LARGE_SET, unique_prefix("large_set"))
    started = time.monotonic()
    large_set = images_of(master, master.run(large_set_prompt, timeout=RUN_TIMEOUT), save)
    one_server_s = time.monotonic() - started

    to_one_batch = [max_abs_diff(a, b) for a, b in zip(across, one_batch)]
    to_large_set = [max_abs_diff(a, b) for a, b in zip(across, large_set)]
    print(f"\nmax |master+worker - one batch| per image (of 255): {to_one_batch}"
          f"\nmax |master+worker - large set on one server| per image (of 255): {to_large_set}"
          f"\nwall time: master + 1 worker {distributed_run['seconds']:.1f} s (queue to saved), one server "
          f"{one_server_s:.1f} s (the distributed run was the first: it includes loading the model on both servers; see tests/benchmarks/bench_distributed_set.py for figures)")
    assert len(one_batch) == len(large_set) == 8
    assert max(to_one_batch) <= 1 and max(to_large_set) <= 1
    # The set is style-aligned, not 8 copies: the targets differ from each other and from the reference.
    assert min(max_abs_diff(across[0], image) for image in across[1:]) > 1
