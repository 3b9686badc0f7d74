"""Throughput of (a) the model alone, (b) the plain loop a user would write, (c) our pipeline.

All three run on the same generated JPEG files, model, resolution, batch size and thread budget.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..config import RunConfig
from ..loop.scenes import make_scene
from .baselines import model_alone, plain_loop
from .inputs import BenchConfig, bench_inputs
from .measure import timed_run


def bench_config(bench: BenchConfig, folder: Path, out: Path, **extra) -> RunConfig:
    """The job's own configuration for a benchmark run (native size, overwrite)."""
    return RunConfig(
        input=str(folder), output=str(out), model=bench.model, weights=bench.weights, batch_size=bench.batch_size,
        threads=bench.actor_threads, num_cpus=bench.num_cpus, mode="overwrite", resize=0, device=bench.device,
        precision=bench.precision, jpeg_decode=bench.jpeg_decode, num_gpus=bench.num_gpus, **extra,
    )  # fmt: skip


def pipeline_run(bench: BenchConfig, folder: Path, out: Path) -> dict:
    """(c) the pipeline end to end through ``jobs.segment``'s code path."""
    record, seconds, memory, gpu = timed_run(bench_config(bench, folder, out))
    return {
        "images_per_second": record["counts"]["rows"] / seconds,
        "seconds": seconds,
        "peak_driver_bytes": memory.driver,
        "peak_workers_bytes": memory.workers,
        "stage_seconds": record.get("stage_seconds", {}),
        "gpu": gpu.summary(),
    }


def benchmark(bench: BenchConfig, variants: dict[str, dict] | None = None, log: Callable[[str], None] = print) -> dict:
    """Run (a), (b) and (c) ``reps`` times each and report medians and ratios.

    (c) runs on ``images`` and, with ``scale``, on ``scale`` times as many: the steady-state rate
    and the peak memory at both sizes (flat when the pipeline streams) come from the pair.
    Each of ``variants`` (label -> changed ``BenchConfig`` fields) runs (c) again on the same cluster.
    ``log`` gets each figure as it is measured (a long run cut short still tells what it found).
    """
    work = Path(bench.workdir)
    paths = bench_inputs(bench, bench.images)
    a, a_gpu = median_run([model_alone(bench, paths) for _ in range(bench.reps)])
    log(f"measured (a) {a:.2f} images/s, GPU {a_gpu}")
    b, b_gpu = median_run([plain_loop(bench, paths, work / "plain") for _ in range(bench.reps)])
    log(f"measured (b) {b:.2f} images/s, GPU {b_gpu}")
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # the preloaded tensors of (a) stay reserved otherwise, beside the actors
    result = {
        "config": bench.__dict__,
        "model_alone_images_per_second": a,
        "plain_loop_images_per_second": b,
        **pipeline_figures(bench, a, b, log),
        "gpu_model_alone": a_gpu,
        "gpu_plain_loop": b_gpu,
        "device": torch.cuda.get_device_name() if a_gpu else "cpu",
        "cpu_count": os.cpu_count(),
    }
    result["variants"] = {
        label: pipeline_figures(replace(bench, **changes), a, b, log) for label, changes in (variants or {}).items()
    }
    result["benchmark_process_max_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return result


def pipeline_figures(bench: BenchConfig, a: float, b: float, log: Callable[[str], None]) -> dict:
    """(c) on ``images`` and ``scale`` times as many, with its ratios to (a) and (b)."""
    counts = [bench.images] + ([bench.images * bench.scale] if bench.scale > 1 else [])
    c = {}
    for n in counts:
        c[n] = pipeline_runs(bench, n)
        runs, stages, gpu = (c[n][k] for k in ("runs_images_per_second", "stage_seconds", "gpu"))
        log(f"measured (c) on {n} images: {runs} images/s, stages {stages}, GPU {gpu}")
    first = c[bench.images]
    result = {
        "pipeline_images_per_second": first["images_per_second"],
        "c_over_a": first["images_per_second"] / a,
        "c_over_b": first["images_per_second"] / b,
        "pipeline_peak_driver_bytes": first["peak_driver_bytes"],
        "pipeline_peak_workers_bytes": first["peak_workers_bytes"],
        "pipeline_stage_seconds": first["stage_seconds"],
        "pipeline_runs": {str(n): r for n, r in c.items()},
    }
    if len(counts) == 2:
        large = c[counts[1]]
        extra = large["seconds"] - first["seconds"]
        steady = (counts[1] - counts[0]) / extra if extra > 0 else None  # too few images: noise wins
        result["steady_state"] = {
            "images": counts,
            "pipeline_images_per_second": steady,
            "startup_seconds": first["seconds"] - counts[0] / steady if steady else None,
            "c_over_a": steady / a if steady else None,
            "c_over_b": steady / b if steady else None,
            "workers_memory_ratio": large["peak_workers_bytes"] / first["peak_workers_bytes"],
            "driver_memory_ratio": large["peak_driver_bytes"] / first["peak_driver_bytes"],
        }
    return result


def median_run(runs: list[tuple[float, dict | None]]) -> tuple[float, dict | None]:
    """The median ``(images/s, GPU figures)`` of repeated runs."""
    return sorted(runs, key=lambda r: r[0])[len(runs) // 2]


def pipeline_runs(bench: BenchConfig, count: int) -> dict:
    """(c) on ``count`` images, ``reps`` times: median time, largest peaks, the median run's stage times."""
    folder = bench_inputs(bench, count)[0].parent
    runs = sorted((pipeline_run(bench, folder, Path(bench.workdir) / "pipeline") for _ in range(bench.reps)),
                  key=lambda r: r["seconds"])  # fmt: skip
    median = runs[len(runs) // 2]
    return {
        "images": count,
        "seconds": median["seconds"],
        "images_per_second": median["images_per_second"],
        "runs_images_per_second": [r["images_per_second"] for r in runs],
        "peak_driver_bytes": max(r["peak_driver_bytes"] for r in runs),
        "peak_workers_bytes": max(r["peak_workers_bytes"] for r in runs),
        "stage_seconds": median["stage_seconds"],
        "gpu": median["gpu"],
    }


def huge_image(bench: BenchConfig, side: int, tile: int, overlap: int) -> dict:
    """Time and peak memory of one ``side`` x ``side`` RGB JPEG through the whole job, in tiles."""
    folder = Path(bench.workdir) / f"huge-{side}"
    path = folder / "huge.jpg"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        block = make_scene(0, 2000, 2000)[0]
        reps = -(-side // 2000)
        Image.fromarray(np.tile(block, (reps, reps, 1))[:side, :side]).save(path, quality=90)
    limits = {"tile_size": tile, "tile_overlap": overlap, "max_pixels": side * side + 1}
    record, seconds, memory, _ = timed_run(bench_config(bench, folder, Path(bench.workdir) / "huge-out", **limits))
    return {
        "side": side, "tile": tile, "overlap": overlap, "seconds": seconds, "status_ok": record["counts"]["ok"],
        "peak_driver_bytes": memory.driver, "peak_workers_bytes": memory.workers,
    }  # fmt: skip
