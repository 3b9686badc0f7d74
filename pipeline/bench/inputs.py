"""What one benchmark run compares (BenchConfig) and the JPEG files it runs on.

Both the baselines (a, b) and the pipeline measurement (c) import from here, never from each other's module.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from ..loop.synthetic import make_scene

DISTINCT_SCENES = 256  # more files are byte copies of these: generating a scene costs 80 ms, decoding one 3


@dataclass(frozen=True)
class BenchConfig:
    """What one benchmark run compares.

    Args:
        model, weights: the model and a weights name or URI (``random`` for untrained).
        size: height and width of the generated JPEG files.
        images: number of files.
        batch_size: images per forward pass in all three measurements.
        threads: torch threads of the one process of (a) and (b): the machine's cores.
        num_cpus: logical CPUs of the local Ray cluster for (c); ``None``: the job's default.
        actor_threads: torch threads per inference actor of (c); ``None``: the job's default.
        reps: repetitions; medians are reported.
        scale: also run (c) on ``scale`` times the images; the extra images over the extra
            seconds give its steady-state rate, with start-up (actor start, model load) cancelled out.
        workdir: where inputs and outputs go.
        device, precision: ``auto|cpu|cuda`` and the CUDA autocast dtype, in all three.
        jpeg_decode, num_gpus: the job's ``--jpeg-decode`` and ``--num-gpus`` for (c).
        run_options: any other ``RunConfig`` fields for (c), e.g. ``{"calls_per_actor": 2}``.
    """

    model: str
    weights: str
    size: int
    images: int
    batch_size: int
    threads: int
    num_cpus: int | None
    actor_threads: int | None
    reps: int
    scale: int
    workdir: str
    device: str = "auto"
    precision: str = "auto"
    jpeg_decode: str = "tasks"
    num_gpus: float | None = None
    run_options: dict = field(default_factory=dict)


def make_inputs(folder: Path, count: int, size: int) -> list[Path]:
    """Synthetic aerial scenes as JPEG files: the first 256 generated once per size, the rest byte copies."""
    scenes = folder.parent / f"scenes-{size}"
    scenes.mkdir(parents=True, exist_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{i:05d}.jpg" for i in range(count)]
    for i, path in enumerate(paths):
        scene = scenes / f"{i % DISTINCT_SCENES:05d}.jpg"
        if not scene.exists():
            Image.fromarray(make_scene(i % DISTINCT_SCENES, size, size)[0]).save(scene, quality=90)
        if not path.exists():
            shutil.copyfile(scene, path)
    return paths


def bench_inputs(bench: BenchConfig, count: int) -> list[Path]:
    """``count`` JPEG files of ``bench.size`` in the benchmark's work folder (made once, then reused)."""
    return make_inputs(Path(bench.workdir) / f"jpeg-{bench.size}-{count}", count, bench.size)
