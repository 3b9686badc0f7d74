"""Phone photos fed small: what a 12 MP source costs the inference actor against the same photo stored
at the fed size, and the actor's peak memory as sources grow (3, 12, 48 MP)."""

from __future__ import annotations

import shutil
from pathlib import Path

from PIL import Image

from ..loop.synthetic import make_scene
from .benchmark import bench_config, probing
from .feed import actor_task_seconds, of_stage
from .inputs import BenchConfig
from .measure import timed_run

SOURCES = {"3 MP": (1512, 2016), "12 MP": (3024, 4032), "48 MP": (6048, 8064)}  # phone sensors, 4:3


def photo_folder(work: Path, size: tuple[int, int], count: int) -> Path:
    """``count`` JPEG photos of ``size`` (two distinct scenes, then byte copies), made once."""
    folder = work / f"photos-{size[0]}x{size[1]}-{count}"
    if not (folder / f"{count - 1:03d}.jpg").exists():
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(min(count, 2)):
            scene = Image.fromarray(make_scene(i, 756, 1008)[0])  # rendered small, scaled up: smooth, as photos are
            scene.resize(size[::-1], Image.Resampling.BICUBIC).save(folder / f"{i:03d}.jpg", quality=90)
        for i in range(2, count):
            shutil.copyfile(folder / f"{i % 2:03d}.jpg", folder / f"{i:03d}.jpg")
    return folder


def actor_figures(bench: BenchConfig, folder: Path, out: Path, resize: int) -> dict:
    """One run at ``--resize``: the inference actors' task and call seconds and their peak memory."""
    timed = timed_run(bench_config(bench, folder, out, resize=resize))
    segment = of_stage(timed.probes, "segment")
    actors = {r["pid"] for r in segment}
    return {
        "rows": timed.record["counts"]["ok"],
        "seconds": timed.seconds,
        "actor_task_seconds": actor_task_seconds(timed.record.get("stage_seconds", {})),
        "actor_call_seconds": sum(r["end"] - r["start"] for r in segment),
        "actor_model_seconds": sum(r.get("model_seconds", 0.0) for r in segment),
        # CPU seconds of the actor processes: what the actor spends, apart from waiting on a shared core
        "actor_call_cpu": sum(r["cpu"] for r in segment),
        "actor_model_cpu": sum(r.get("model_cpu", 0.0) for r in segment),
        "actor_peak_bytes": max((timed.memory.peak_by_pid.get(pid, 0) for pid in actors), default=0),
    }


def photos(bench: BenchConfig, count: int, resize: int = 520, log=print) -> dict:
    """Each source size at ``--resize``, and the 12 MP photos stored at the fed size, through the whole job.

    Args:
        bench: model, batch size, threads and device of the runs.
        count: photos per run.
        resize: the shorter side fed to the model.
        log: where each run's figures go as they are measured.
    """
    work = Path(bench.workdir)
    result = {"count": count, "resize": resize, "runs": {}}
    with probing(work / "probes"):
        for label, size in SOURCES.items():
            result["runs"][label] = actor_figures(bench, photo_folder(work, size, count), work / "out", resize)
            log(f"{label} photos at --resize {resize}: {result['runs'][label]}")
        fed = fed_copies(photo_folder(work, SOURCES["12 MP"], count), resize)
        result["runs"]["12 MP stored at the fed size"] = actor_figures(bench, fed, work / "out", resize)
        log(f"12 MP stored at the fed size: {result['runs']['12 MP stored at the fed size']}")
    runs = result["runs"]
    for kind in ("actor_task_seconds", "actor_call_seconds", "actor_call_cpu"):
        result[f"{kind}_12mp_over_fed"] = runs["12 MP"][kind] / runs["12 MP stored at the fed size"][kind]
    return result


def fed_copies(folder: Path, resize: int) -> Path:
    """The photos of ``folder`` stored at the size they are fed (the shorter side at ``resize``)."""
    out = folder.with_name(folder.name + f"-fed{resize}")
    if not out.exists():
        out.mkdir()
        for path in sorted(folder.glob("*.jpg")):
            image = Image.open(path)
            scale = resize / min(image.size)
            size = (round(image.width * scale), round(image.height * scale))
            image.convert("RGB").resize(size, Image.Resampling.BILINEAR).save(out / path.name, quality=90)
    return out
