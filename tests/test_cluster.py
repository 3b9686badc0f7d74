"""The job on a multi-node cluster with GPU actors, and submitted with `ray job submit`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import ray
import ray.data
from imagefiles import CLASSES, rgb, varied_checkpoint
from outputs import check_contract, read_tables
from PIL import Image
from ray.cluster_utils import Cluster

from jobs.segment import main

REPO = Path(__file__).resolve().parents[1]


def images(folder: Path, count: int, height: int = 40, width: int = 48) -> Path:
    folder.mkdir()
    for i in range(count):
        Image.fromarray(rgb(height + i % 3, width, i)).save(folder / f"{i:02d}.png")
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
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


def wait_for_dashboard(url: str, head: subprocess.Popen, seconds: float = 90) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        assert head.poll() is None, "ray start --head exited"
        try:
            with urllib.request.urlopen(f"{url}/api/version", timeout=2):
                return
        except urllib.error.HTTPError:  # up, and asking for Ray's auth token: ray job submit sends it
            return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"no Ray dashboard at {url}")


@pytest.mark.slow
def test_ray_job_submit_runs_the_job_on_a_running_cluster(tmp_path):
    bin_dir = Path(sys.executable).parent
    # Ray 2.60 turns token auth on for a new head when ~/.ray/auth_token exists, but the job
    # CLI only sends it with RAY_AUTH_MODE=token: set one mode for both sides
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    dashboard = f"http://127.0.0.1:{free_port()}"
    head = subprocess.Popen(
        [bin_dir / "ray", "start", "--head", "--block", "--num-cpus", "3", "--port", str(free_port()),
         "--dashboard-port", dashboard.rsplit(":", 1)[1], "--include-dashboard", "true", "--disable-usage-stats",
         # the job agent's own port too: another Ray on this host (a test's local cluster) may hold the default
         "--dashboard-agent-listen-port", str(free_port())],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_dashboard(dashboard, head)
        weights = varied_checkpoint(tmp_path / "w.pth")
        job = ["python", "-m", "jobs.segment", "--input", str(images(tmp_path / "in", 5)), "--output"]
        job += [str(tmp_path / "out"), "--weights", weights, "--classes", ",".join(CLASSES)]
        submit = [bin_dir / "ray", "job", "submit", "--address", dashboard, "--working-dir", str(REPO)]
        submit += ["--runtime-env", str(REPO / "deploy" / "runtime_env.yaml"), "--", *job]
        for _ in range(30):  # the dashboard answers before its job agent is ready
            done = subprocess.run(submit, env=env, cwd=REPO, capture_output=True, text=True, timeout=400)
            if "No available agent" not in done.stderr + done.stdout:
                break
            time.sleep(3)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert "5 images (5 ok, 0 errors" in done.stdout
        masks, stats = read_tables(str(tmp_path / "out"))
        check_contract(masks, stats, CLASSES)
        assert masks.num_rows == 5
    finally:
        head.terminate()
        head.wait(timeout=60)
