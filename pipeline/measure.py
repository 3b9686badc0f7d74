"""Time and peak memory of one run of the job, as the benchmarks measure it."""

from __future__ import annotations

import contextlib
import threading
import time

import psutil

from .config import RunConfig
from .run import init_ray, preflight, run


class PeakMemory:
    """Samples resident memory of this process and of its children (the local Ray cluster) in a thread."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval, self.driver, self.workers = interval, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            self.driver = max(self.driver, me.memory_info().rss)
            total = 0
            for child in me.children(recursive=True):  # this driver's own local Ray cluster
                with contextlib.suppress(psutil.Error):
                    total += child.memory_info().rss
            self.workers = max(self.workers, total)
            time.sleep(self.interval)


def timed_run(config: RunConfig) -> tuple[dict, float, PeakMemory]:
    """Run the job (preflight and Ray start excluded from the time) while sampling memory."""
    plan = preflight(config)
    init_ray(config)
    with PeakMemory() as memory:
        started = time.perf_counter()
        record = run(config, plan)
        seconds = time.perf_counter() - started
    return record, seconds, memory
