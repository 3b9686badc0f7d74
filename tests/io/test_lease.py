"""The output lease: two runs into one output never both write; a dead run's lease is taken over."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import fsspec
import pytest
from imagefiles import CLASSES, rgb, varied_checkpoint
from outputs import check_contract, read_tables
from PIL import Image

from jobs.segment import main
from pipeline.io import lease

REPO = Path(__file__).resolve().parents[2]


def test_a_live_lease_refuses_and_a_stale_one_is_taken_over(tmp_path):
    fs, root = fsspec.filesystem("file"), str(tmp_path)
    with lease.hold(fs, root, "first", 60):
        with pytest.raises(lease.LeaseHeld, match="in use by run first"), lease.hold(fs, root, "second", 60):
            pass
        assert lease.held_by_other(fs, root, "second")["run_id"] == "first"
    assert not (tmp_path / lease.LEASE).exists()  # released
    expired = {"run_id": "old", "host": "elsewhere", "pid": 1, "seconds": 60, "expires": time.time() - 1}
    (tmp_path / lease.LEASE).write_text(json.dumps(expired))
    with lease.hold(fs, root, "third", 60):
        assert json.loads((tmp_path / lease.LEASE).read_text())["run_id"] == "third"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = {**expired, "host": lease.socket.gethostname(), "pid": int(gone.stdout), "expires": time.time() + 600}
    (tmp_path / lease.LEASE).write_text(json.dumps(dead))  # killed on this host, not yet expired
    with lease.hold(fs, root, "fourth", 60):
        assert json.loads((tmp_path / lease.LEASE).read_text())["run_id"] == "fourth"


@pytest.mark.slow
def test_a_second_run_into_a_busy_output_is_refused_and_writes_nothing(tmp_path, capsys):
    weights = varied_checkpoint(tmp_path / "varied.pth")
    (tmp_path / "in").mkdir()
    for i in range(24):
        Image.fromarray(rgb(64, 64, i)).save(tmp_path / "in" / f"{i}.png")
    argv = ["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--weights", weights]
    argv += ["--classes", ",".join(CLASSES), "--num-cpus", "2"]
    first = subprocess.Popen([sys.executable, "-m", "jobs.segment", *argv], cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)  # fmt: skip
    deadline = time.time() + 120
    while not (tmp_path / "out" / lease.LEASE).exists():
        assert first.poll() is None and time.time() < deadline, first.stdout.read() if first.stdout else ""
        time.sleep(0.05)
    assert main([*argv, "--actors-max", "1"]) == 2
    assert "is in use by run" in capsys.readouterr().err
    assert first.wait(300) == 0, first.stdout.read()
    masks, stats = read_tables(str(tmp_path / "out"))
    rows = check_contract(masks, stats, CLASSES)
    assert len(rows) == 24  # every input once, all from the first run
    assert len(json.loads((tmp_path / "out" / "_manifest.json").read_text())["runs"]) == 1
    assert not (tmp_path / "out" / lease.LEASE).exists()
