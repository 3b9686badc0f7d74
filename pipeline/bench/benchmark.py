"""Throughput of (a) the model alone, (b) the plain loop a user would write, (c) our pipeline.

All three run on the same generated JPEG files, model, resolution, batch size and thread budget,
interleaved: each repetition runs (a), (b) and (c) in turn.
"""

from __future__ import annotations

import contextlib
import os
import resource
import statistics
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..config import RunConfig
from ..loop.synthetic import make_scene
from ..probe import ENV
from ..quiet import quiet_ray
from .baselines import model_alone, plain_loop
from .feed import actor_task_seconds, feed_figures
from .inputs import BenchConfig, bench_inputs
from .measure import timed_run


def bench_config(bench: BenchConfig, folder: Path, out: Path, **extra) -> RunConfig:
    """The job's configuration for a benchmark run (native size, overwrite), then ``run_options``, ``extra``."""
    fields = {
        "input": str(folder), "output": str(out), "model": bench.model, "weights": bench.weights,
        "batch_size": bench.batch_size, "threads": bench.actor_threads, "num_cpus": bench.num_cpus,
        "mode": "overwrite", "resize": 0, "device": bench.device, "precision": bench.precision,
        "jpeg_decode": bench.jpeg_decode, "num_gpus": bench.num_gpus,
    }  # fmt: skip
    return RunConfig(**{**fields, **bench.run_options, **extra})


def pipeline_run(bench: BenchConfig, folder: Path, out: Path) -> dict:
    """(c) the pipeline end to end through ``jobs.segment``'s code path, with what it spent by stage."""
    timed = timed_run(bench_config(bench, folder, out))
    stages = timed.record.get("stage_seconds", {})
    segment_seconds = actor_task_seconds(stages)
    return {
        "images_per_second": timed.record["counts"]["rows"] / timed.seconds,
        "seconds": timed.seconds,
        "peak_driver_bytes": timed.memory.driver,
        "peak_workers_bytes": timed.memory.workers,
        "stage_seconds": stages,
        "gpu": timed.gpu.summary(),
        **feed_figures(timed.probes, timed.memory, timed.started, segment_seconds),
    }


def benchmark(bench: BenchConfig, variants: dict[str, dict] | None = None, log: Callable[[str], None] = print) -> dict:
    """Run (a), (b), (c) and each variant of (c) in turn, ``reps`` times; figures as min, median and max.

    Interleaving puts every figure's repetitions under the same conditions, and each ratio is taken
    within one repetition. (c)'s steady state comes from inside each run (``feed_figures``).
    With ``scale``, (c) runs once more on ``scale`` times the images: peak memory at both sizes.
    ``log`` gets each figure as it is measured (a long run cut short still tells what it found).

    Args:
        bench: what to compare.
        variants: label -> changed ``BenchConfig`` fields; each runs (c) again on the same cluster.
        log: where each measured figure goes.
    """
    work = Path(bench.workdir)
    paths = bench_inputs(bench, bench.images)
    quiet_ray("benchmark")  # as the job runs by default: Ray's log lines to a file, one progress bar
    configs = {"pipeline": bench, **{label: changed(bench, fields) for label, fields in (variants or {}).items()}}
    reps = []
    with probing(work / "probes"):
        for rep in range(1, bench.reps + 1):
            a, a_gpu = model_alone(bench, paths)
            log(f"rep {rep}: (a) {a:.2f} images/s, GPU {a_gpu}")
            b, b_gpu = plain_loop(bench, paths, work / "plain")
            log(f"rep {rep}: (b) {b:.2f} images/s, GPU {b_gpu}")
            if torch.cuda.is_available():
                torch.cuda.empty_cache()  # the preloaded tensors of (a) stay reserved otherwise, beside the actors
            runs = {}
            for label, config in configs.items():
                runs[label] = pipeline_run(config, paths[0].parent, work / "pipeline")
                log(f"rep {rep}: (c) {label}: {brief(runs[label])}")
            reps.append({"a": a, "b": b, "gpu_a": a_gpu, "gpu_b": b_gpu, "c": runs})
        result = {
            "config": bench.__dict__,
            "reps": reps,
            "figures": {label: figures(reps, label) for label in configs},
            "device": torch.cuda.get_device_name() if reps[0]["gpu_a"] else "cpu",
            "cpu_count": os.cpu_count(),
        }
        if bench.scale > 1:
            large = pipeline_run(bench, bench_inputs(bench, bench.images * bench.scale)[0].parent, work / "pipeline")
            small = reps[len(reps) // 2]["c"]["pipeline"]
            result["memory_scale"] = {
                "images": [bench.images, bench.images * bench.scale],
                "workers_ratio": large["peak_workers_bytes"] / small["peak_workers_bytes"],
                "driver_ratio": large["peak_driver_bytes"] / small["peak_driver_bytes"],
                "large_run": large,
            }
            log(f"(c) on {bench.images * bench.scale} images: {brief(large)}")
    result["benchmark_process_max_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return result


def changed(bench: BenchConfig, fields: dict) -> BenchConfig:
    """``bench`` with ``fields`` changed: its own fields, and any other as a ``RunConfig`` option of (c)."""
    own = {k: v for k, v in fields.items() if k in BenchConfig.__dataclass_fields__}
    options = {k: v for k, v in fields.items() if k not in own}
    return replace(bench, **own, run_options={**bench.run_options, **options})


@contextlib.contextmanager
def probing(folder: Path) -> Iterator[None]:
    """Turn the stages' timing records on (``pipeline.probe``); set before Ray starts, workers inherit it."""
    folder.mkdir(parents=True, exist_ok=True)
    before = os.environ.get(ENV)
    os.environ.setdefault(ENV, str(folder))  # a cluster already started with a folder keeps it
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ENV, None)


def brief(run: dict) -> str:
    """One line of a (c) run's figures, for the log."""
    parts = [f"{run['images_per_second']:.2f} images/s end to end"]
    if run.get("steady_images_per_second"):
        parts.append(f"steady {run['steady_images_per_second']:.2f}")
    if "first_mask_seconds" in run:
        parts.append(f"first mask {run['first_mask_seconds']:.2f} s")
    if "feed_ms_per_image" in run:
        parts.append(f"feed {run['feed_ms_per_image']['feed']:.1f} CPU-ms/image")
    return ", ".join(parts)


def median_run(runs: list[tuple[float, dict | None]]) -> tuple[float, dict | None]:
    """The median ``(images/s, GPU figures)`` of repeated runs."""
    return sorted(runs, key=lambda r: r[0])[len(runs) // 2]


def spread(values: list[float | None]) -> dict | None:
    """Min, median and max of repeated figures (``None`` where any repetition had none)."""
    if not values or any(v is None for v in values):
        return None
    return {"min": min(values), "median": statistics.median(values), "max": max(values), "values": values}


def figures(reps: list[dict], label: str) -> dict:
    """Every figure of (a), (b) and (c) ``label`` over the repetitions; ratios within each repetition."""
    c = [rep["c"][label] for rep in reps]
    steady = [r.get("steady_images_per_second") for r in c]
    result = {
        "a_images_per_second": spread([rep["a"] for rep in reps]),
        "b_images_per_second": spread([rep["b"] for rep in reps]),
        "c_images_per_second": spread([r["images_per_second"] for r in c]),
        "c_steady_images_per_second": spread(steady),
        "c_over_b_end_to_end": spread([r["images_per_second"] / rep["b"] for r, rep in zip(c, reps, strict=True)]),
        "c_over_a_end_to_end": spread([r["images_per_second"] / rep["a"] for r, rep in zip(c, reps, strict=True)]),
        "c_over_b_steady": spread([s and s / rep["b"] for s, rep in zip(steady, reps, strict=True)]),
        "c_over_a_steady": spread([s and s / rep["a"] for s, rep in zip(steady, reps, strict=True)]),
        "first_mask_seconds": spread([r.get("first_mask_seconds") for r in c]),
        "actor_overhead_per_call": spread([r.get("actor_overhead_per_call") for r in c]),
        "cpus_per_gpu_at_model_alone_rate": spread([r.get("cpus_per_gpu_at_model_alone_rate") for r in c]),
        "peak_workers_bytes": spread([r["peak_workers_bytes"] for r in c]),
        "peak_driver_bytes": spread([r["peak_driver_bytes"] for r in c]),
    }
    feeds = [r.get("feed_ms_per_image") for r in c]
    if all(feeds):
        result["feed_ms_per_image"] = {stage: spread([f[stage] for f in feeds]) for stage in feeds[0]}
    ratio = result["c_over_b_steady"]
    result["c_over_b_steady_spread"] = (ratio["max"] - ratio["min"]) / ratio["median"] if ratio else None
    return result


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
    timed = timed_run(bench_config(bench, folder, Path(bench.workdir) / "huge-out", **limits))
    return {
        "side": side, "tile": tile, "overlap": overlap, "seconds": timed.seconds,
        "status_ok": timed.record["counts"]["ok"], "peak_driver_bytes": timed.memory.driver,
        "peak_workers_bytes": timed.memory.workers,
    }  # fmt: skip
