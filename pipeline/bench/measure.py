"""Time and peak memory of one run of the job, as the benchmarks measure it."""

from __future__ import annotations

import bisect
import contextlib
import os
import shutil
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass

import psutil

from ..cluster import init_ray
from ..config import RunConfig
from ..probe import ENV, read_records
from ..run import preflight, run


class PeakMemory:
    """Samples resident memory and CPU time of this process and of its children (the local Ray cluster).

    Memory: the peak of this process (``driver``) and of the sum of its children (``workers``).
    CPU: every ``interval`` the user+system seconds each process has used since sampling began, by
    group (``driver``; ``workers``: Ray worker processes, named ``ray::...``; ``ray``: Ray's own
    processes; ``sampler``: nvidia-smi) and by worker pid; a process that exits keeps its last figure.
    The sampling thread's own CPU is left out of ``driver``.
    """

    def __init__(self, interval: float = 0.1, pss: bool = False) -> None:
        self.interval, self.driver, self.workers = interval, 0, 0
        # with ``pss``, also the proportional set size (shared pages split among the processes mapping them:
        # Ray's object store and the shared libraries are counted once), summed and per process; slower
        self.pss, self.pss_total, self.pss_by_pid = pss, 0, {}
        self.pss_at_peak: list[tuple[str, int]] = []  # (title, PSS) of each process when the sum peaked
        self.peak_by_pid: dict[int, int] = {}  # each child's own peak resident memory
        self.title_at_peak: dict[int, str] = {}  # and what it was then (a Ray worker's title names its task)
        # (time.time(), cumulative CPU seconds by group and by worker pid)
        self.cpu_series: list[tuple[float, dict]] = []
        self._base: dict[int, float] = {}
        self._last: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakMemory:
        me = psutil.Process()
        for proc in [me, *me.children(recursive=True)]:  # what ran before sampling is not this run's
            with contextlib.suppress(psutil.Error):
                self._base[proc.pid] = _cpu_seconds(proc)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        me, own = psutil.Process(), time.thread_time()
        mine = own
        while not self._stop.is_set():
            self.driver = max(self.driver, me.memory_info().rss)
            total = 0
            for proc in [me, *me.children(recursive=True)]:  # this driver's own local Ray cluster
                with contextlib.suppress(psutil.Error):
                    if proc.pid != me.pid:
                        rss = proc.memory_info().rss
                        total += rss
                        if rss > self.peak_by_pid.get(proc.pid, 0):
                            self.peak_by_pid[proc.pid] = rss
                            self.title_at_peak[proc.pid] = " ".join(proc.cmdline()[:1])[:80]
                    if proc.pid == me.pid:  # this thread's CPU read just before the process's that holds it
                        mine = time.thread_time()
                    cpu = _cpu_seconds(proc) - self._base.get(proc.pid, 0.0)
                    # a process keeps its group: read its command line once, not every sample
                    known = self._last.get(proc.pid)
                    group = known[0] if known else "driver" if proc.pid == me.pid else _group(proc)
                    self._last[proc.pid] = (group, cpu)
            self.workers = max(self.workers, total)
            if self.pss:
                self._sample_pss(me)
            # the sampling itself (this thread, nvidia-smi) is the benchmark's cost, not the run's
            groups: dict = {"driver": -(mine - own), "workers": 0.0, "ray": 0.0, "sampler": 0.0}
            for pid, (group, cpu) in self._last.items():
                groups[group] += cpu
                if group == "workers":
                    groups[pid] = cpu
            self.cpu_series.append((time.time(), groups))
            time.sleep(self.interval)

    def _sample_pss(self, me: psutil.Process) -> None:
        total, now = 0, []
        for proc in [me, *me.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                pss = proc.memory_full_info().pss
                total += pss
                self.pss_by_pid[proc.pid] = max(pss, self.pss_by_pid.get(proc.pid, 0))
                now.append(("driver" if proc.pid == me.pid else " ".join(proc.cmdline()[:1])[:60], pss))
        if total > self.pss_total:
            self.pss_total, self.pss_at_peak = total, sorted(now, key=lambda item: -item[1])

    def cpu_at(self, when: float) -> dict:
        """Cumulative CPU seconds by group and worker pid at ``when``, interpolated between samples."""
        series = self.cpu_series
        if not series:
            return {"driver": 0.0, "workers": 0.0, "ray": 0.0, "sampler": 0.0}
        i = bisect.bisect_left([t for t, _ in series], when)
        if i == 0 or i == len(series):
            return dict(series[min(i, len(series) - 1)][1])
        (t0, g0), (t1, g1) = series[i - 1], series[i]
        share = (when - t0) / (t1 - t0) if t1 > t0 else 1.0
        return {k: g0.get(k, 0.0) + (g1[k] - g0.get(k, 0.0)) * share for k in g1}


def _cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def _group(proc: psutil.Process) -> str:
    """``workers`` for Ray's worker processes (their title is ``ray::<task or actor>``), else ``ray``."""
    with contextlib.suppress(psutil.Error):
        command = proc.cmdline()
        if command and command[0].endswith("nvidia-smi"):
            return "sampler"
        if command and command[0].startswith("ray::"):
            return "workers"
    return "ray"


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


@dataclass
class Timed:
    """One run of the job as measured: its manifest record, seconds, and what was sampled around it."""

    record: dict
    seconds: float
    started: float  # time.time() when the run was called, Ray already up
    memory: PeakMemory
    gpu: GpuBusy
    probes: list[dict]  # ``pipeline.probe`` records; empty unless FCN_PROBE_DIR is set


def timed_run(config: RunConfig, pss: bool = False) -> Timed:
    """Run the job (preflight and Ray start excluded from the time) while sampling memory, CPU and GPU.

    With ``FCN_PROBE_DIR`` set, the records of earlier runs there are removed first.
    """
    plan = preflight(config)
    folder = os.environ.get(ENV)
    for old in os.listdir(folder) if folder else []:
        os.remove(os.path.join(folder, old))
    init_ray(config.ray_address, config.num_cpus)
    with PeakMemory(0.5 if pss else 0.1, pss=pss) as memory, GpuBusy() as gpu:
        started, clock = time.time(), time.perf_counter()
        record = run(config, plan)
        seconds = time.perf_counter() - clock
    return Timed(record, seconds, started, memory, gpu, read_records(folder) if folder else [])
