"""Throughput of (a) the model alone, (b) the plain loop a user would write, (c) our pipeline.

All three run on the same generated JPEG files, model, resolution, batch size and thread budget.
"""

from __future__ import annotations

import contextlib
import io
import os
import resource
import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image

import models

from .config import RunConfig
from .postprocess import encode_png
from .run import init_ray, preflight, run
from .scenes import make_scene


@dataclass(frozen=True)
class BenchConfig:
    """What one benchmark run compares.

    Args:
        model, weights: the model and a weights name or URI (``random`` for untrained).
        size: height and width of the generated JPEG files.
        images: number of files.
        batch_size: images per forward pass in all three measurements.
        threads: torch threads for (a) and (b), and for the pipeline's inference actor.
        num_cpus: CPUs of the local Ray cluster for (c).
        reps: repetitions; medians are reported.
        workdir: where inputs and outputs go.
    """

    model: str
    weights: str
    size: int
    images: int
    batch_size: int
    threads: int
    num_cpus: int
    reps: int
    workdir: str


def make_inputs(folder: Path, count: int, size: int) -> list[Path]:
    """Synthetic aerial scenes as JPEG files (generated once per folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{i:05d}.jpg" for i in range(count)]
    for i, path in enumerate(paths):
        if not path.exists():
            Image.fromarray(make_scene(i, size, size)[0]).save(path, quality=90)
    return paths


def load_model(bench: BenchConfig) -> torch.nn.Module:
    weights = None if bench.weights == "random" else bench.weights
    return models.get_model(bench.model, weights=weights).eval().to(memory_format=torch.channels_last)


def normalise(images: np.ndarray, meta: models.Weights) -> torch.Tensor:
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / meta.value_range
    mean, std = torch.tensor(meta.mean).view(1, 3, 1, 1), torch.tensor(meta.std).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


def model_alone(bench: BenchConfig, paths: list[Path]) -> float:
    """(a) forward passes over tensors already in memory: the ceiling, images/s."""
    torch.set_num_threads(bench.threads)
    model = load_model(bench)
    images = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])
    batches = [
        normalise(images[i : i + bench.batch_size], model.weights_meta) for i in range(0, len(paths), bench.batch_size)
    ]
    with torch.inference_mode():
        model(batches[0])  # warm-up
        started = time.perf_counter()
        for x in batches:
            model(x).argmax(dim=1)
    return len(paths) / (time.perf_counter() - started)


def plain_loop(bench: BenchConfig, paths: list[Path], out: Path) -> float:
    """(b) one process: read, decode, preprocess, run, encode masks, write Parquet with pyarrow."""
    torch.set_num_threads(bench.threads)
    started = time.perf_counter()
    model = load_model(bench)
    rows = {"source": [], "height": [], "width": [], "mask_png": [], "class_pixels": []}
    with torch.inference_mode():
        for i in range(0, len(paths), bench.batch_size):
            chunk = paths[i : i + bench.batch_size]
            images = np.stack([np.asarray(Image.open(io.BytesIO(p.read_bytes())).convert("RGB")) for p in chunk])
            masks = model(normalise(images, model.weights_meta)).argmax(dim=1).to(torch.uint8).numpy()
            for path, mask in zip(chunk, masks, strict=True):
                rows["source"].append(str(path))
                rows["height"].append(mask.shape[0])
                rows["width"].append(mask.shape[1])
                rows["mask_png"].append(encode_png(mask))
                rows["class_pixels"].append(
                    np.bincount(mask.ravel(), minlength=model.weights_meta.num_classes).tolist()
                )
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(rows), out / "masks.parquet")
    return len(paths) / (time.perf_counter() - started)


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


def bench_config(bench: BenchConfig, folder: Path, out: Path, **extra) -> RunConfig:
    """The job's own configuration for a benchmark run (native size, overwrite)."""
    return RunConfig(
        input=str(folder), output=str(out), model=bench.model, weights=bench.weights, batch_size=bench.batch_size,
        threads=bench.threads, num_cpus=bench.num_cpus, mode="overwrite", resize=0, **extra,
    )  # fmt: skip


def timed_run(config: RunConfig) -> tuple[dict, float, PeakMemory]:
    """Run the job (preflight and Ray start excluded from the time) while sampling memory."""
    plan = preflight(config)
    init_ray(config)
    with PeakMemory() as memory:
        started = time.perf_counter()
        record = run(config, plan)
        seconds = time.perf_counter() - started
    return record, seconds, memory


def pipeline_run(bench: BenchConfig, folder: Path, out: Path) -> dict:
    """(c) the pipeline end to end through ``jobs.segment``'s code path."""
    record, seconds, memory = timed_run(bench_config(bench, folder, out))
    return {
        "images_per_second": record["counts"]["rows"] / seconds,
        "peak_driver_bytes": memory.driver,
        "peak_workers_bytes": memory.workers,
        "stage_seconds": record.get("stage_seconds", {}),
    }


def benchmark(bench: BenchConfig) -> dict:
    """Run (a), (b) and (c) ``reps`` times each and report medians and ratios."""
    work = Path(bench.workdir)
    paths = make_inputs(work / f"jpeg-{bench.size}-{bench.images}", bench.images, bench.size)
    a = [model_alone(bench, paths) for _ in range(bench.reps)]
    b = [plain_loop(bench, paths, work / "plain") for _ in range(bench.reps)]
    c = [pipeline_run(bench, paths[0].parent, work / "pipeline") for _ in range(bench.reps)]
    median_c = statistics.median(r["images_per_second"] for r in c)
    result = {
        "config": bench.__dict__,
        "model_alone_images_per_second": statistics.median(a),
        "plain_loop_images_per_second": statistics.median(b),
        "pipeline_images_per_second": median_c,
        "c_over_a": median_c / statistics.median(a),
        "c_over_b": median_c / statistics.median(b),
        "pipeline_peak_driver_bytes": max(r["peak_driver_bytes"] for r in c),
        "pipeline_peak_workers_bytes": max(r["peak_workers_bytes"] for r in c),
        "pipeline_stage_seconds": c[len(c) // 2]["stage_seconds"],
        "benchmark_process_max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "runs": {"a": a, "b": b, "c": [r["images_per_second"] for r in c]},
        "cpu_count": os.cpu_count(),
    }
    return result


def memory_scaling(bench: BenchConfig, factor: int) -> dict:
    """Peak memory of the pipeline on ``images`` and on ``factor`` times as many: flat when streaming."""
    work = Path(bench.workdir)
    small = make_inputs(work / f"jpeg-{bench.size}-{bench.images}", bench.images, bench.size)[0].parent
    large_count = bench.images * factor
    large = make_inputs(work / f"jpeg-{bench.size}-{large_count}", large_count, bench.size)[0].parent
    runs = {
        n: pipeline_run(bench, folder, work / "pipeline") for n, folder in ((bench.images, small), (large_count, large))
    }
    first, second = runs[bench.images], runs[large_count]
    return {
        "images": [bench.images, large_count],
        "peak_workers_bytes": [first["peak_workers_bytes"], second["peak_workers_bytes"]],
        "peak_driver_bytes": [first["peak_driver_bytes"], second["peak_driver_bytes"]],
        "workers_ratio": second["peak_workers_bytes"] / first["peak_workers_bytes"],
        "driver_ratio": second["peak_driver_bytes"] / first["peak_driver_bytes"],
    }


def model_zoo(size: int, threads: int, batch_size: int, reps: int = 3) -> list[dict]:
    """Parameters and CPU images/s at ``size`` x ``size`` of every registered model (random weights)."""
    torch.set_num_threads(threads)
    rows = []
    for name in models.list_models():
        model = models.get_model(name).eval()
        x = torch.randn(batch_size, 3, size, size)
        with torch.inference_mode():
            model(x)  # warm-up
            times = []
            for _ in range(reps):
                started = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - started)
        params = sum(p.numel() for p in model.parameters())
        rows.append({"model": name, "parameters": params, "images_per_second": batch_size / statistics.median(times)})
    return rows


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
    record, seconds, memory = timed_run(bench_config(bench, folder, Path(bench.workdir) / "huge-out", **limits))
    return {
        "side": side, "tile": tile, "overlap": overlap, "seconds": seconds, "status_ok": record["counts"]["ok"],
        "peak_driver_bytes": memory.driver, "peak_workers_bytes": memory.workers,
    }  # fmt: skip
