"""Scenario j: a worker node lost mid-run (its raylet SIGKILLed) on a local two-node cluster, one added back.

The cluster is real ``ray start`` processes on this machine (``LocalCluster``, token mode): a head with
no CPUs for work (it holds the GCS and the job's driver) and a worker node that runs the read, decode
and write tasks and the inference actor. Ray retries the lost tasks and restarts the actor on the new
node, so a batch can run twice: the sink's exactly-once must hold under that.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
from pathlib import Path

from .check import masks_files, readers_see, tally
from .harness import finish, job_command, start_job, wait_for
from .inputs import sources
from .local_cluster import LocalCluster
from .outcome import Outcome, begin
from .races import LEASE


def worker_lost(workdir: Path, images: Path, root: Path | None = None) -> Outcome:
    """j. The worker node's raylet is SIGKILLed once rows are committed; a new node joins; run, or rerun, to the end.

    Then the lease must be gone and one more resume must commit nothing.

    Args:
        workdir: folder for this scenario's output and log.
        images: folder of the shared input images.
        root: a short folder for the cluster, kept (default: a new one under /tmp, removed unless a problem).
    """
    outcome, out = begin(workdir, "j", "j. worker node lost")
    expected = sources(images)
    folder = Path(root or tempfile.mkdtemp(prefix="chaos-j-", dir="/tmp"))
    with LocalCluster(folder) as cluster:
        command = job_command(images, out, "--ray-address", cluster.start_head())
        first = cluster.add_worker()
        proc = start_job(command, outcome.log, cluster.env)
        if wait_for(lambda: bool(masks_files(out)), proc):
            files = len(masks_files(out))
            cluster.raylet(first).send_signal(signal.SIGKILL)
            outcome.notes.append(f"SIGKILL to the worker node's raylet, {files} masks files committed")
            if (readers_see(out, outcome) or 0) >= len(expected):
                outcome.problems.append("the node was lost after every input was committed: not mid-run")
            cluster.add_worker()
        else:
            outcome.problems.append(f"the run ended (exit {proc.poll()}) before the node could be lost")
        code = finish(proc, outcome, expect=None)
        outcome.notes.append(f"the run exited {code}" + ("; rerun on the new node" if code else ", no rerun needed"))
        if code != 0:
            finish(start_job(command, outcome.log, cluster.env), outcome)
        if (out / LEASE).exists():
            outcome.problems.append("the lease was left behind after the run ended")
        before = {p.name for p in masks_files(out)}
        finish(start_job(command, outcome.log, cluster.env), outcome)  # one more resume: nothing left to do
    tally(outcome, out, expected)
    resumed = outcome.runs[-1]["counts"] if outcome.runs else {}
    if resumed.get("rows") != 0 or resumed.get("already_committed") != len(expected):
        outcome.problems.append(f"a further resume did not find everything committed: {resumed}")
    if {p.name for p in masks_files(out)} != before:
        outcome.problems.append("a further resume committed new masks files")
    if root is None and not outcome.problems:
        shutil.rmtree(folder, ignore_errors=True)
    elif outcome.problems:
        outcome.notes.append(f"the nodes' logs are in {folder}")
    return outcome
