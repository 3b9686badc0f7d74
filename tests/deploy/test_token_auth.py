"""A real Ray head in token mode refuses ``ray job submit`` without its token and, with it, runs the
segmentation job as deploy/README.md submits it (``--working-dir``, ``deploy/runtime_env.yaml``).

The head is ``ray start --head --block`` in a process group of its own, with its own temp dir and ports
(``chaos.local_cluster.LocalCluster``), so the test session's Ray cluster is not touched; it reads its token
from a file through ``RAY_AUTH_TOKEN_PATH``, as the cluster launcher's nodes do (deploy/cluster-aws.yaml).
The clients get a ``HOME`` of their own, so the real ``~/.ray/auth_token`` is never read. The head is
stopped by ending its process group, never with ``ray stop``, which would stop every Ray process here.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from imagefiles import CLASSES, rgb, varied_checkpoint
from outputs import check_contract, read_tables
from PIL import Image

from pipeline.testing.chaos.local_cluster import RAY, LocalCluster

REPO = Path(__file__).resolve().parents[2]
ENTRYPOINT = ["python", "-c", "print('ok')"]  # what a refused client tries to run
HEAD_TIMEOUT = 60.0
JOB_TIMEOUT = 400.0


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """This process's environment without any Ray address or auth setting, ``HOME`` elsewhere, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS" and not k.startswith("RAY_AUTH")}
    return env | {"HOME": str(home)} | extra


@pytest.fixture(scope="module")
def head():
    """``(dashboard URL, token file, HOME for the clients, head process)``; the head is stopped after."""
    root = Path(tempfile.mkdtemp(prefix="rtok-", dir="/tmp"))  # short: Ray's socket paths have a length limit
    (root / "home").mkdir()
    try:
        with LocalCluster(root) as cluster:
            cluster.start_head(num_cpus=3, dashboard=True)  # the job's decode tasks and its actor
            yield cluster.dashboard, cluster.token, root / "home", cluster.nodes[0]
    finally:
        shutil.rmtree(root, ignore_errors=True)


def ray_job(
    address: str, env: dict[str, str], *args: str, timeout: float = HEAD_TIMEOUT
) -> subprocess.CompletedProcess:
    """``ray job ARGS --address ADDRESS`` (default: submit the one-line job) under ``env``.

    A dashboard that did not answer in time (``Failed to connect``: a loaded machine) is asked again,
    for up to ``HEAD_TIMEOUT``; every other answer, a refusal included, is returned as it is.
    """
    args = args or ("submit", "--address", address, "--", *ENTRYPOINT)
    if "--address" not in args:
        args = (*args, "--address", address)
    deadline = time.monotonic() + HEAD_TIMEOUT
    while True:
        done = subprocess.run([RAY, "job", *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)
        if "Failed to connect to Ray at address" not in done.stderr or time.monotonic() > deadline:
            return done
        time.sleep(1)


def submit_when_ready(
    address: str, env: dict[str, str], proc: subprocess.Popen, job: list[str]
) -> subprocess.CompletedProcess:
    """Submit ``job`` with the token; while the head's job agent is still starting, Ray answers 500: try again."""
    deadline = time.monotonic() + HEAD_TIMEOUT
    submit = ["submit", "--address", address, "--working-dir", str(REPO)]
    submit += ["--runtime-env", str(REPO / "deploy" / "runtime_env.yaml"), "--", *job]
    while True:
        done = ray_job(address, env, *submit, timeout=JOB_TIMEOUT)
        busy = "No available agent" in done.stderr + done.stdout
        if done.returncode == 0 or not busy or time.monotonic() > deadline or proc.poll() is not None:
            return done
        time.sleep(1)


def wait_for_dashboard(address: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + HEAD_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            urllib.request.urlopen(f"{address}/api/version", timeout=2)  # noqa: S310 (a local URL)
            return
        except urllib.error.HTTPError:
            return  # it answers, be it 401 (the version route needs the token)
        except OSError:
            time.sleep(0.5)
    log = Path(log).read_text(errors="replace")[-3000:]
    pytest.fail(f"the head did not answer at {address} (exit {proc.poll()}); its output ends:\n{log}")


@pytest.mark.slow
def test_a_token_head_refuses_a_submission_without_the_token_and_runs_the_job_with_the_token(head, tmp_path):
    address, token, home, proc = head
    wait_for_dashboard(address, proc, token.with_name("head.log"))

    # no token at all: a client as anyone else on the network would run it (its mode unset, no ~/.ray)
    anonymous = ray_job(address, clean_env(home))
    assert anonymous.returncode != 0
    assert "Unauthorized: Missing authentication token" in anonymous.stderr, anonymous.stderr[-2000:]
    # a wrong token
    wrong = ray_job(address, clean_env(home, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32)))
    assert wrong.returncode != 0
    assert "Forbidden: Invalid authentication token" in wrong.stderr, wrong.stderr[-2000:]

    # the token, from the same file the head reads
    with_token = clean_env(home, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))
    (tmp_path / "in").mkdir()
    for i in range(5):
        Image.fromarray(rgb(40 + i % 3, 48, i)).save(tmp_path / "in" / f"{i:02d}.png")
    job = ["python", "-m", "jobs.segment", "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out")]
    job += ["--weights", varied_checkpoint(tmp_path / "w.pth"), "--classes", ",".join(CLASSES)]
    accepted = submit_when_ready(address, with_token, proc, job)
    assert accepted.returncode == 0, accepted.stdout[-3000:] + accepted.stderr[-3000:]
    assert "5 images (5 ok, 0 errors" in accepted.stdout  # the job's own summary, then `ray job submit`'s
    assert "succeeded" in accepted.stdout + accepted.stderr
    masks, stats = read_tables(str(tmp_path / "out"))
    check_contract(masks, stats, CLASSES)
    assert masks.num_rows == 5

    # the refused submissions left no job behind: the head knows exactly the one accepted
    listed = ray_job(address, with_token, "list")
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert listed.stdout.count("submission_id=") == 1, listed.stdout
    assert "status=<JobStatus.SUCCEEDED" in listed.stdout and "driver_exit_code=0" in listed.stdout
