"""Time and peak memory of one run of the job, as the benchmarks measure it."""

from __future__ import annotations

import contextlib
import shutil
import statistics
import subprocess
import threading
import time

import psutil

from ..cluster import init_ray
from ..config import RunConfig
from ..run import preflight, run


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


class GpuBusy:
    """Samples every GPU's busy percentage and memory (NVML, through ``nvidia-smi``) in a thread.

    NVML's busy figure is the share of the sample period in which a kernel ran. Without
    ``nvidia-smi`` (a CPU machine) nothing is sampled and ``summary()`` is ``None``.
    """

    def __init__(self, interval_ms: int = 100) -> None:
        self.interval_ms, self.samples = interval_ms, []  # (seconds, busy %, memory MiB)
        self._proc: subprocess.Popen | None = None
        self._thread = threading.Thread(target=self._read, daemon=True)

    def __enter__(self) -> GpuBusy:
        if shutil.which("nvidia-smi"):
            query = ["--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits"]
            command = ["nvidia-smi", *query, f"--loop-ms={self.interval_ms}"]
            self._proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._proc:
            self._proc.terminate()
            self._thread.join()

    def _read(self) -> None:
        for line in self._proc.stdout:
            with contextlib.suppress(ValueError):
                busy, memory = (float(v) for v in line.split(","))
                self.samples.append((time.perf_counter(), busy, memory))

    def summary(self) -> dict | None:
        """Mean busy % over the whole window and over its active part (first to last busy sample)."""
        if not self.samples:
            return None
        busy = [b for _, b, _ in self.samples]
        active = [i for i, b in enumerate(busy) if b > 0] or [0]
        return {
            "busy_percent": statistics.fmean(busy),
            "busy_percent_active": statistics.fmean(busy[active[0] : active[-1] + 1]),
            "active_seconds": self.samples[active[-1]][0] - self.samples[active[0]][0],
            "peak_memory_mib": max(m for _, _, m in self.samples),
            "samples": len(busy),
        }


def timed_run(config: RunConfig) -> tuple[dict, float, PeakMemory, GpuBusy]:
    """Run the job (preflight and Ray start excluded from the time) while sampling memory and GPU."""
    plan = preflight(config)
    init_ray(config.ray_address, config.num_cpus)
    with PeakMemory() as memory, GpuBusy() as gpu:
        started = time.perf_counter()
        record = run(config, plan)
        seconds = time.perf_counter() - started
    return record, seconds, memory, gpu
