"""Gigapixel scenes as tile rows: peak memory against scene size, throughput against the same tiles as
separate files, agreement with the in-memory tiled path, and the bytes a scene's reads fetch from S3."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from ..loop.synthetic import make_scene
from .benchmark import bench_config
from .inputs import BenchConfig
from .measure import timed_run

TILE, OVERLAP = 1024, 128  # the job's defaults
POOL = 2  # inference actors of the runs here (2 cores: 3 logical CPUs, a quarter kept for reading)
AS_ROWS = {"scene_pixels": 1}  # every scene through tiles as rows


def blocks() -> list[np.ndarray]:
    """Four distinct 1024-px scenes the generated rasters are made of."""
    return [make_scene(seed, TILE, TILE)[0] for seed in range(4)]


def scene_file(work: Path, side: int, compression: str = "jpeg") -> Path:
    """A ``side`` x ``side`` RGB tiled GeoTIFF (UTM 33N, 512-px blocks), written band by band, made once."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    path = work / f"scene-{side}-{compression}" / "scene.tif"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    parts = blocks()
    extra = {"photometric": "ycbcr", "jpeg_quality": 90} if compression == "jpeg" else {"predictor": 2}
    profile = {"driver": "GTiff", "height": side, "width": side, "count": 3, "dtype": "uint8", "tiled": True,
               "blockxsize": 512, "blockysize": 512, "compress": compression, "bigtiff": "IF_SAFER",
               "crs": "EPSG:32633", "transform": from_origin(500_000, 5e6, 0.5, 0.5), **extra}  # fmt: skip
    partial = path.with_suffix(".partial.tif")
    with rasterio.open(partial, "w", **profile) as dst:
        for row, y0 in enumerate(range(0, side, TILE)):
            rows = min(TILE, side - y0)
            band = np.concatenate([parts[(row + k) % 4] for k in range(-(-side // TILE))], axis=1)[:rows, :side]
            dst.write(np.moveaxis(band, -1, 0), window=Window(0, y0, side, rows))
    partial.rename(path)
    return path


def tile_files(work: Path, count: int) -> Path:
    """``count`` separate 1024-px JPEG files of the same blocks: the scene's tiles given as files."""
    folder = work / f"tiles-{count}"
    if not (folder / f"{count - 1:05d}.jpg").exists():
        folder.mkdir(parents=True, exist_ok=True)
        encoded = []
        for part in blocks():
            buffer = io.BytesIO()
            Image.fromarray(part).save(buffer, format="JPEG", quality=90)
            encoded.append(buffer.getvalue())
        for k in range(count):
            (folder / f"{k:05d}.jpg").write_bytes(encoded[k % 4])
    return folder


def measured(bench: BenchConfig, folder: Path, out: Path, **options) -> dict:
    """One run of the job: seconds, rows, and peak memory (one process, and driver plus Ray's processes)."""
    timed = timed_run(bench_config(bench, folder, out, tile_size=TILE, tile_overlap=OVERLAP, **options), pss=True)
    memory = timed.memory
    return {
        "seconds": round(timed.seconds, 2),
        "ok": timed.record["counts"]["ok"],
        "errors": timed.record["counts"]["errors"],
        # RSS counts every page a process maps, so the object store's pages and torch's libraries are counted
        # in each process that touched them; PSS splits shared pages among them (the memory really used)
        "peak_one_process_rss_bytes": max([memory.driver, *memory.peak_by_pid.values()]),
        "peak_all_processes_rss_bytes": memory.driver + memory.workers,
        "peak_one_process_pss_bytes": max(memory.pss_by_pid.values(), default=0),
        "peak_all_processes_pss_bytes": memory.pss_total,
        # what the summed peak was made of: the processes above 100 MiB then, and the rest together
        "pss_at_peak_gib": [(title, round(pss / 2**30, 2)) for title, pss in memory.pss_at_peak if pss > 100 * 2**20]
        + [("the rest", round(sum(pss for _, pss in memory.pss_at_peak if pss <= 100 * 2**20) / 2**30, 2))],
        # the largest processes at their peaks: which one grows with the scene
        "largest_processes_rss_gib": sorted(
            [("driver", round(memory.driver / 2**30, 2))]
            + [(memory.title_at_peak.get(pid, "?"), round(rss / 2**30, 2)) for pid, rss in memory.peak_by_pid.items()],
            key=lambda item: -item[1],
        )[:6],
    }


def tiles_of(side: int) -> int:
    from ..grid import tile_grid

    return len(tile_grid(side, side, TILE, OVERLAP))


def scenes_benchmark(bench: BenchConfig, sides: list[int], compression: str = "jpeg", log=print) -> dict:
    """Each scene through tiles as rows; a 2048 px scene as the memory reference; the smallest scene's tiles
    as separate files for throughput.

    Args:
        bench: model, weights, batch size, threads of the runs.
        sides: scene sides, e.g. ``[20000, 50000]``.
        compression: ``jpeg`` or ``deflate`` tiles.
        log: where each figure goes as it is measured.
    """
    work = Path(bench.workdir)
    result: dict = {"tile": TILE, "overlap": OVERLAP, "compression": compression, "runs": {}}
    reference = scene_file(work, 2048, compression)
    result["runs"]["2048 (in memory)"] = run = measured(bench, reference.parent, work / "out")
    log(f"2048 x 2048 scene, the in-memory path (one actor: the pool is sized by the inputs): {run}")
    result["runs"]["2048 (tiles as rows)"] = run = measured(bench, reference.parent, work / "out", **AS_ROWS)
    log(f"2048 x 2048 scene as tile rows (the same run as the large scenes): {run}")
    for side in sides:
        path = scene_file(work, side, compression)
        run = measured(bench, path.parent, work / "out", **AS_ROWS)
        run.update(tiles=tiles_of(side), file_bytes=path.stat().st_size)
        run["tiles_per_second"] = round(run["tiles"] / run["seconds"], 3)
        result["runs"][f"{side} (tiles as rows)"] = run
        log(f"{side} x {side} scene as tile rows: {run}")
    for side in sides:  # items read cold, as by actors taking them in turn: an upper bound of what S3 sends
        result["runs"][f"{side} (tiles as rows)"]["read_bytes_over_file"] = ratio = read_ratio(
            bench_config(bench, scene_file(work, side, compression).parent, work / "out", tile_size=TILE,
                         tile_overlap=OVERLAP, scene_pixels=1), scene_file(work, side, compression), POOL)  # fmt: skip
        log(f"{side} x {side} scene: its items read cold fetch {ratio}x the file ({POOL} actors' items)")
    count = tiles_of(min(sides))
    run = measured(bench, tile_files(work, count), work / "out")
    run["tiles_per_second"] = round(count / run["seconds"], 3)
    result["runs"][f"{count} separate 1024 px files"] = run
    log(f"the same {count} tiles as separate files: {run}")
    first = result["runs"][f"{min(sides)} (tiles as rows)"]
    result["throughput_scene_over_files"] = round(first["tiles_per_second"] / run["tiles_per_second"], 3)
    for kind in ("rss", "pss"):
        base = result["runs"]["2048 (tiles as rows)"][f"peak_all_processes_{kind}_bytes"]
        for side in sides:
            extra = result["runs"][f"{side} (tiles as rows)"][f"peak_all_processes_{kind}_bytes"] - base
            result[f"peak_all_{kind}_above_2048_{side}_bytes"] = extra
    log(f"throughput scene / files: {result['throughput_scene_over_files']}")
    return result


def read_ratio(config, path: Path, actors: int) -> float:
    """Bytes the actors' own reads (``scenes.read.WindowReader``) take from ``path`` over its size, each item of
    the scene read from a cold start (its header, and the first overlap, read again), items cut for ``actors``.

    The same reads through S3 fetch the same bytes (no read-ahead; ``tests/io/test_scene_tiles.py``).
    """
    from fsspec.implementations.local import LocalFileOpener

    from ..grid import TileRow
    from ..scenes import read as scenes

    fetched, read = [], LocalFileOpener.read

    def counted(self, *args, **kwargs):
        data = read(self, *args, **kwargs)
        fetched.append(len(data))
        return data

    info = scenes.find_scenes([str(path)], [path.stat().st_size], "", config)[str(path)]
    LocalFileOpener.read = counted
    try:
        for item in scenes.scene_items(scenes.Scene(str(path), "id", None, info), config, actors=actors):
            reader = scenes.WindowReader(config)
            (rows,) = scenes.tile_rows({k: np.array([v], dtype=object) for k, v in item.items()}, config, "")
            for source, tile in zip(rows["source"], rows["tile"], strict=True):
                error = reader.read(source, TileRow.from_vector(tile))[2]
                assert error is None, error
            reader.close()
    finally:
        LocalFileOpener.read = read
    return round(sum(fetched) / path.stat().st_size, 4)


def agreement(bench: BenchConfig, side: int = 4000, log=print) -> dict:
    """The same ``side`` px scene through tiles as rows and through today's in-memory tiles: masks compared."""
    import pyarrow.dataset as pads
    import rasterio

    work = Path(bench.workdir)
    path = scene_file(work, side, "deflate")
    rows = measured(bench, path.parent, work / "agree-rows", scene_pixels=1)
    memory = measured(bench, path.parent, work / "agree-memory", scene_pixels=0, max_pixels=side * side + 1)
    (a,) = pads.dataset(work / "agree-rows" / "masks").to_table().to_pylist()
    (b,) = pads.dataset(work / "agree-memory" / "masks").to_table().to_pylist()
    with rasterio.open(a["mask_uri"]) as src:
        stitched = src.read(1)
    whole = np.asarray(Image.open(io.BytesIO(b["mask_png"])))
    found = {"side": side, "agreement": float((stitched == whole).mean()), "tiles_as_rows": rows, "in_memory": memory}
    log(f"{side} x {side}: tiles as rows agree with the in-memory path on {found['agreement']:.6f} of pixels; "
        f"seconds {rows['seconds']} vs {memory['seconds']}")  # fmt: skip
    return found
