"""Export throughput: committed masks exported in each format, images/s, polygons/s, CPU per image.

The masks table is made directly (the sink's own commit of synthetic scene masks), so the figures are the
export's alone, not the segmentation's. The GIS and table formats run over georeferenced masks; ``dicom-seg``
over a second table whose sources are synthetic CT files of the masks' size (pydicom's CT_small header).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow.fs as pafs

from ..exports.config import ExportConfig
from ..exports.job import export
from ..io.schema import RunInfo
from ..io.sink import MaskTableSink
from ..loop.synthetic import CLASSES, make_scene
from ..stages.postprocess import encode_png
from .measure import PeakMemory

RUN_ID = "20261127T000000Z-bench0"
# "all" is the three GIS formats together, as in earlier figures; dicom-seg runs over its own CT table
RUNS = {"cog": ["cog"], "geoparquet": ["geoparquet"], "cog+stac": ["cog", "stac"], "all": ["cog", "geoparquet", "stac"],
        "hf": ["hf"], "coco": ["coco"]}  # fmt: skip


def commit_masks(
    root: str,
    masks: dict[str, np.ndarray],
    georefs: dict[str, tuple[str | None, list[float] | None]],
    class_names: tuple[str, ...] = CLASSES,
    failed: frozenset[str] = frozenset(),
    sources: dict[str, str] | None = None,
    frames: dict[str, int] | None = None,
) -> None:
    """Commit ``masks`` as one masks/class_stats file pair, as a segment run's sink would.

    Args:
        root: the output folder (local).
        masks: image id -> class map (255 no-data).
        georefs: image id -> ``(crs, geotransform)`` (``(None, None)`` for an image without).
        class_names: names by class id.
        failed: ids committed as error rows instead.
        sources: image id -> source URI (default ``/in/<id>.tif``).
        frames: image id -> 0-based frame of a multi-frame source (default none).
    """
    ids = list(masks)
    ok = np.array([i not in failed for i in ids])
    n = len(class_names)
    sources, frames = sources or {}, frames or {}
    batch = {
        "image_id": np.array(ids, dtype=object),
        "source": np.array([sources.get(i, f"/in/{i}.tif") for i in ids], dtype=object),
        "source_version": np.array([None] * len(ids), dtype=object),
        "frame": np.array([frames.get(i, -1) for i in ids], np.int32),
        "status": np.where(ok, "ok", "error").astype(object),
        "error": np.array([None if good else "corrupt" for good in ok], dtype=object),
        "height": np.array([m.shape[0] for m in masks.values()], np.int32),
        "width": np.array([m.shape[1] for m in masks.values()], np.int32),
        "mask_png": np.array([encode_png(m) for m in masks.values()], dtype=object),
        "class_pixels": np.array([np.bincount(m[m != 255], minlength=n)[:n] for m in masks.values()]),
        "class_confidence": np.full((len(ids), n), 0.5),
        "crs": np.array([georefs[i][0] for i in ids], dtype=object),
        "geotransform": np.array([georefs[i][1] or [np.nan] * 6 for i in ids], float),
        "node": np.array(["bench"] * len(ids), dtype=object),
    }
    MaskTableSink(pafs.LocalFileSystem(), root, RunInfo(RUN_ID, "bench", None, class_names), len(ids)).commit(batch)


def bench_masks(root: Path, count: int, size: int, per_file: int = 100) -> None:
    """``count`` masks of ``size`` px in UTM 33N (8 distinct scenes, side by side), made once."""
    if (root / "masks").exists():
        return
    scenes = [make_scene(seed, size, size)[1].astype(np.uint8) for seed in range(min(count, 8))]
    for start in range(0, count, per_file):
        ids = [f"scene-{k:05d}" for k in range(start, min(count, start + per_file))]
        transforms = {i: ("EPSG:32633", [500_000.0 + k * size, 0.5, 0.0, 5e6, 0.0, -0.5]) for k, i in enumerate(ids)}
        commit_masks(str(root), {i: scenes[k % len(scenes)] for k, i in enumerate(ids, start)}, transforms)


def bench_dicom(root: Path, count: int, size: int) -> None:
    """``count`` masks of ``size`` px whose sources are CT files of that size (one SOP instance each), made once."""
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    if (root / "masks").exists():
        return
    (root / "dicom").mkdir(parents=True, exist_ok=True)
    ct = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ct.Rows = ct.Columns = size
    scenes = [make_scene(seed, size, size)[1].astype(np.uint8) for seed in range(min(count, 8))]
    sources = {}
    for k in range(count):
        image_id = f"ct-{k:05d}"
        ct.PixelData = (scenes[k % len(scenes)].astype(np.int16) * 200).tobytes()  # any pixels: the SEG reads none
        ct.SOPInstanceUID = ct.file_meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[image_id])
        sources[image_id] = str(root / "dicom" / f"{image_id}.dcm")
        ct.save_as(sources[image_id])
    masks = {i: scenes[k % len(scenes)] for k, i in enumerate(sources)}
    commit_masks(str(root), masks, dict.fromkeys(masks, (None, None)), sources=sources)


def export_benchmark(workdir: str, count: int, size: int, num_cpus: int | None, log=print) -> dict:
    """Each format (and the GIS ones together) over ``count`` masks, after untimed warm-up exports.

    Args:
        workdir: scratch folder.
        count: masks.
        size: their height and width.
        num_cpus: logical CPUs of the local Ray cluster.
        log: where each figure goes as it is measured.
    """
    from ..cluster import init_ray
    from ..quiet import quiet_ray

    root, dicom = Path(workdir) / f"export-masks-{count}x{size}", Path(workdir) / f"export-dicom-{count}x{size}"
    bench_masks(root, count, size)
    bench_dicom(dicom, count, size)
    log(f"Ray's own log lines go to {quiet_ray('benchmark-exports')}")
    init_ray(None, num_cpus)
    # warm-up: workers and the imports of every format
    export(ExportConfig(masks=str(root), to=["cog", "geoparquet", "hf", "coco"], mode="overwrite"))
    export(ExportConfig(masks=str(dicom), to=["dicom-seg"], mode="overwrite"))
    result = {"count": count, "size": size, "runs": {}}
    runs = {name: (root, formats) for name, formats in RUNS.items()} | {"dicom-seg": (dicom, ["dicom-seg"])}
    for name, (masks, formats) in runs.items():
        result["runs"][name] = run = _measure(masks, formats, count)
        log(f"export {name:<11} {count} masks of {size} px: {run}")
    return result


def _measure(masks: Path, formats: list[str], count: int) -> dict:
    """One export of ``formats`` over every mask of ``masks`` (``--mode overwrite``): time, rates, CPU."""
    with PeakMemory() as memory:
        started = time.time()
        record = export(ExportConfig(masks=str(masks), to=formats, mode="overwrite"))
        seconds = time.time() - started
    cpu = memory.cpu_series[-1][1] if memory.cpu_series else {}
    polygons = record["formats"].get("geoparquet", {}).get("polygons", 0)
    return {
        "seconds": round(seconds, 2),
        "images_per_second": round(count / seconds, 2),
        "polygons": polygons,
        "polygons_per_second": round(polygons / seconds, 1),
        "annotations": record["formats"].get("coco", {}).get("annotations", 0),
        "cpu_ms_per_image": round(1000 * (cpu.get("driver", 0) + cpu.get("workers", 0)) / count, 1),
        "errors": sum(f["errors"] for f in record["formats"].values()),
    }
