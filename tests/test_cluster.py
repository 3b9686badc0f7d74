"""The job on a multi-node cluster with GPU actors (``ray job submit`` to a token-mode head: tests/deploy)."""

from __future__ import annotations

import json
from pathlib import Path

import ray
import ray.data
from imagefiles import CLASSES, rgb, varied_checkpoint
from outputs import check_contract, read_tables
from PIL import Image
from ray.cluster_utils import Cluster

from jobs.segment import main


def images(folder: Path, count: int, height: int = 40, width: int = 48) -> Path:
    folder.mkdir()
    for i in range(count):
        Image.fromarray(rgb(height + i % 3, width, i)).save(folder / f"{i:02d}.png")
    return folder


def test_gpu_actor_pool_spreads_over_two_worker_nodes(tmp_path):
    ray.shutdown()  # this test needs its own cluster; later tests start a fresh local one
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    workers = [cluster.add_node(num_cpus=2, num_gpus=1) for _ in range(2)]  # declared GPUs; torch runs on CPU
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    context = ray.data.DataContext.get_current()
    waited, context.wait_for_min_actors_s = context.wait_for_min_actors_s, 300  # both actors up before work
    # one batch in flight per actor: else the actor beside the decode tasks (locality) may queue all 8
    in_flight, context.max_tasks_in_flight_per_actor = context.max_tasks_in_flight_per_actor, 1
    try:
        weights = varied_checkpoint(tmp_path / "w.pth")
        # images large enough that inference, not decoding, is the slow stage: a batch then finds
        # the first actor busy and goes to the second (an idle first actor would win every tie)
        folder = images(tmp_path / "in", 16, height=320, width=320)
        argv = ["--input", str(folder), "--output", str(tmp_path / "out"), "--weights", weights]
        flags = ["--classes", ",".join(CLASSES), "--num-gpus", "1", "--actors-min", "2", "--batch-size", "2"]
        assert main([*argv, *flags, "--decode-batch-size", "2"]) == 0
        masks, stats = read_tables(str(tmp_path / "out"))
        assert masks.num_rows == 16
        check_contract(masks, stats, CLASSES)
        by_node = json.loads((tmp_path / "out" / "_manifest.json").read_text())["runs"][-1]["rows_by_inference_node"]
        assert set(by_node) == {w.node_id for w in workers} and sum(by_node.values()) == 16
    finally:
        context.wait_for_min_actors_s, context.max_tasks_in_flight_per_actor = waited, in_flight
        ray.shutdown()
        cluster.shutdown()
