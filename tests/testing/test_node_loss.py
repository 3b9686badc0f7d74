"""Issue 28: a worker node lost mid-run on a real two-node cluster (``ray start`` head and worker, token mode).

``chaos.worker_lost`` SIGKILLs the worker node's raylet once rows are committed and adds a node back; the
run (or its rerun) must end with every input exactly once, no lease left, and one more resume committing
nothing. Ray retries the lost tasks and restarts the actor, so batches run twice: the sink must not care.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import psutil
import pytest

from pipeline.testing import chaos

IMAGES = 16  # 4 masks files of 4 rows: the node goes after the first, with most of the work left


@pytest.mark.slow
def test_worker_node_lost_mid_run(tmp_path):
    images = tmp_path / "images"
    chaos.make_images(images, IMAGES)
    root = Path(tempfile.mkdtemp(prefix="cj-", dir="/tmp"))  # short: Ray's socket paths have a length limit
    try:
        outcome = chaos.worker_lost(tmp_path, images, root)
        print(chaos.table([outcome]))
        assert outcome.problems == [], "\n".join(outcome.problems + [f"logs: {root}"])
        assert (outcome.lost, outcome.duplicated, outcome.errors) == (0, 0, 0)
        assert outcome.rows == outcome.inputs == IMAGES
        assert any(note.startswith("SIGKILL to the worker node's raylet") for note in outcome.notes)
        *_, last = outcome.runs  # the further resume: everything was there, nothing new committed
        assert last["complete"] and last["counts"]["already_committed"] == IMAGES and last["counts"]["rows"] == 0
        left = [p for p in psutil.process_iter(["cmdline"]) if str(root) in " ".join(p.info["cmdline"] or ())]
        assert not left, f"Ray processes of the scenario's cluster outlived it: {left}"
    finally:
        shutil.rmtree(root, ignore_errors=True)
