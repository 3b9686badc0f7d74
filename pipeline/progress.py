"""One progress line for a run: rows segmented, their rate, errors so far (and scene tiles), on the terminal.

The postprocess tasks add each batch to a ``Tally`` actor (no CPU of its own); a driver thread reads it
every second and redraws one line on a terminal, or prints a line every ``LOG_EVERY`` seconds when the
output is a file or a pipe (a submitted job's log). The counts are rows that left the model; the summary
line at the end counts what was committed.
"""

from __future__ import annotations

import sys
import threading
import time

import numpy as np
import ray

from .grid import is_tile

LOG_EVERY = 30.0  # seconds between lines when stdout is not a terminal


@ray.remote(num_cpus=0, max_restarts=0)
class Tally:
    """Rows, error rows and scene tiles counted so far."""

    def __init__(self) -> None:
        self.counts = {"rows": 0, "errors": 0, "tiles": 0, "tile_errors": 0}

    def add(self, counts: dict) -> None:
        for key, value in counts.items():
            self.counts[key] += value

    def totals(self) -> dict:
        return dict(self.counts)


def batch_counts(errors: np.ndarray, tiles: np.ndarray) -> dict:
    """What one postprocess batch adds: ``errors`` its reasons (``None`` when ok), ``tiles`` its ``tile`` rows."""
    failed, tile = np.array([e is not None for e in errors], bool), is_tile(tiles)
    return {"rows": int((~tile).sum()), "errors": int((failed & ~tile).sum()), "tiles": int(tile.sum()),
            "tile_errors": int((failed & tile).sum())}  # fmt: skip


def line(counts: dict, total: int | None, tiles: int, seconds: float) -> str:
    """``12/40 images, 2 errors, 3.1 images/s`` (and ``, 100/529 scene tiles`` when the run has scenes)."""
    done = counts["rows"]
    # frames of multi-frame files are rows of their own: past the listed total, the total is dropped
    text = f"{done}/{total} images" if total is not None and done <= total else f"{done} images"
    text += f", {counts['errors']} error{'s' * (counts['errors'] != 1)}"
    text += f", {done / seconds:.1f} images/s" if seconds > 0 else ""
    if tiles:
        text += f", {counts['tiles']}/{tiles} scene tiles ({counts['tile_errors']} failed)"
    return text


class Progress:
    """The driver's progress line, drawn from a ``Tally`` while the run's chain executes.

    Args:
        total: rows expected (images and frames not yet known: None), scene rows left out.
        tiles: scene tiles expected.
        stream: where the line goes.
    """

    def __init__(self, total: int | None, tiles: int = 0, stream=None) -> None:
        self.tally = Tally.remote()
        self.total, self.tiles, self.stream = total, tiles, stream or sys.stdout
        self.terminal = self.stream.isatty()
        self.started, self.stopped = time.time(), threading.Event()
        self.thread = threading.Thread(target=self._draw, name="fcn-progress", daemon=True)

    def __enter__(self) -> Progress:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)
        if self.terminal:
            self.stream.write("\r\033[K")  # the summary line takes its place
            self.stream.flush()
        ray.kill(self.tally)

    def _draw(self) -> None:
        last = time.time()
        while not self.stopped.wait(1.0):
            try:
                counts = ray.get(self.tally.totals.remote(), timeout=5)
            except Exception:  # a missed redraw is harmless
                continue
            text = line(counts, self.total, self.tiles, time.time() - self.started)
            if self.terminal:
                self.stream.write(f"\r\033[K{text}")
            elif time.time() - last >= LOG_EVERY:
                self.stream.write(f"{text}\n")
                last = time.time()
            self.stream.flush()
