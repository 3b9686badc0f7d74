"""The job's own progress line (errors so far) and the stderr filter that keeps Ray's known C++ line off it."""

from __future__ import annotations

import io
import subprocess
import sys
import time

import numpy as np

from pipeline import progress
from pipeline.grid import NO_TILE

KNOWN = (
    "[2026-11-27 01:09:41,335 E 4041 4041] core_worker.cc:2297: Actor with class name: 'MapWorker(MapBatches("
    "Segmenter))' and ID: 'a5' has constructor arguments in the object store and max_restarts > 0. See "
    "https://github.com/ray-project/ray/issues/53727 for more details."
)


def test_counts_and_line():
    tiles = np.stack([NO_TILE, NO_TILE, NO_TILE, np.arange(12)])
    counts = progress.batch_counts(np.array([None, "bad", None, "tile 3 broken"], dtype=object), tiles)
    assert counts == {"rows": 3, "errors": 1, "tiles": 1, "tile_errors": 1}
    assert progress.line(counts, 7, 0, 2.0) == "3/7 images, 1 error, 1.5 images/s"
    assert progress.line({**counts, "rows": 9, "errors": 2}, 7, 529, 3.0) == (
        "9 images, 2 errors, 3.0 images/s, 1/529 scene tiles (1 failed)"  # frames past the listed total
    )


def test_progress_lines_from_the_tally(ray_local, monkeypatch):
    monkeypatch.setattr(progress, "LOG_EVERY", 0.0)
    stream = io.StringIO()
    with progress.Progress(5, stream=stream) as shown:
        shown.tally.add.remote({"rows": 2, "errors": 1, "tiles": 0, "tile_errors": 0})
        deadline = time.time() + 20
        while "2/5 images, 1 error" not in stream.getvalue() and time.time() < deadline:
            time.sleep(0.2)
    assert "2/5 images, 1 error" in stream.getvalue(), stream.getvalue()


def test_stderr_keeps_every_line_but_the_known_one(tmp_path):
    log = tmp_path / "ray.log"
    script = (
        "import os, sys\n"
        "from pipeline.quiet import divert_known_lines\n"
        "divert_known_lines(sys.argv[1])\n"
        f"os.write(2, {(KNOWN + chr(10)).encode()!r})\n"
        "os.write(2, b'[2026-11-27 E 1 1] raylet_client.cc:99: a real C++ error\\n')\n"
        "raise RuntimeError('the traceback reaches the terminal')\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(log)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "a real C++ error" in done.stderr and "RuntimeError: the traceback reaches" in done.stderr
    assert "constructor arguments" not in done.stderr
    assert "constructor arguments in the object store" in log.read_text()
