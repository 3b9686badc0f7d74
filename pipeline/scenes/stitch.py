"""Stitching a scene's tile rows into one tiled raster, window by window, then committing the scene's row.

The tiles of a scene arrive from any actor in any order and wait under ``_tiles/<scene id>/`` (``sink``).
When the run's rows are written, each scene whose every tile is there is stitched in a Ray task: each
tile's own region goes into a tiled GeoTIFF (GDAL's block cache bounded, so memory never holds the
scene), GDAL's COG driver adds overviews (nearest: class ids are never averaged), the raster is moved to
``scenes/<scene id>.tif`` and only then is the scene's masks row committed, with ``mask_uri``. A scene
with a failed tile becomes an error row naming it. A killed run leaves ``_tiles/`` (cleared by the next
run, which redoes the scene) and at most a raster no row points to (removed by the next run).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import ray
from PIL import Image

from ..grid import TileRow, tile_column
from ..io.commit import Committed, Layout, fenced_publish, stage
from ..io.output import list_parquet
from ..io.schema import RunInfo
from ..io.sink import MaskTableSink

GDAL_CACHE_MB = 256  # the partial blocks of a row of tiles; far below a scene
SMALL = ["image_id", "source", "source_version", "crs", "geotransform", "error", "tile", "class_pixels",
         "confidence_sum"]  # fmt: skip


def pending_scenes(fs: pafs.FileSystem, root: str) -> list[str]:
    """Scene ids with tile rows waiting under ``_tiles/``."""
    selector = pafs.FileSelector(Layout(fs, root).tiles_root, allow_not_found=True)
    return sorted(i.base_name for i in fs.get_file_info(selector) if i.type == pafs.FileType.Directory)


def stitch_scenes(out_fs: pafs.FileSystem, root: str, output_uri: str, run: RunInfo) -> list[Committed]:
    """Stitch every scene whose tiles are all written, in parallel Ray tasks; their commit records."""
    scenes = pending_scenes(out_fs, root)
    if not scenes:
        return []
    # max_calls=1: the worker exits after its scene, so the heap GDAL's cache and the COG copy grew (0.7-0.9
    # GiB) is given back rather than kept by an idle worker for the rest of the session
    task = ray.remote(num_cpus=1, max_retries=2, max_calls=1)(stitch_scene)
    return ray.get([task.remote(out_fs, root, output_uri, scene, run) for scene in scenes])


def stitch_scene(fs: pafs.FileSystem, root: str, output_uri: str, scene: str, run: RunInfo) -> Committed:
    """Stitch one scene and commit its row (ok with ``mask_uri``, or an error naming the failed tile).

    Args:
        fs: filesystem of the output.
        root: the output folder inside ``fs``.
        output_uri: the output as the user gave it (``mask_uri`` is under it).
        scene: the scene's image id.
        run: this run's provenance.

    Returns:
        what the sink committed (the scene's one row).
    """
    layout = Layout(fs, root)
    pieces = list_parquet(fs, layout.tiles(scene))
    small = pa.concat_tables([pq.read_table(p, columns=SMALL, filesystem=fs) for p in pieces])
    first = small.slice(0, 1).to_pylist()[0]
    tiles = np.asarray(small["tile"].to_pylist(), np.int64)
    head = TileRow.from_vector(tiles[0])
    height, width, count = head.scene_height, head.scene_width, head.count
    row = {"image_id": scene, "source": first["source"], "source_version": first["source_version"],
           "crs": first["crs"], "geotransform": first["geotransform"], "height": height, "width": width}  # fmt: skip
    failed = [e for e in small["error"].to_pylist() if e]
    missing = count - len(np.unique(tile_column(tiles, "index")))
    pixels = np.asarray(small["class_pixels"].to_pylist(), np.int64).sum(axis=0)
    sums = np.asarray(small["confidence_sum"].to_pylist(), np.float64).sum(axis=0)
    sink = MaskTableSink(fs, root, run, 1)
    if failed or missing:
        reason = failed[0] if failed else f"{missing} of {count} tiles never came back"
        more = f" (and {len(failed) - 1} more failed tiles)" if len(failed) > 1 else ""
        return _done(layout, scene, sink.commit(_batch(row, None, pixels, sums, f"{reason}{more}")))
    raster = layout.scene_raster(scene)
    with tempfile.TemporaryDirectory(prefix="fcn-scene-") as scratch:
        cog = _write_raster(fs, pieces, row, scratch, run)
        staged = stage(fs, layout.staged(run.run_id, f"scene-{scene}.tif"), Path(cog))
        fenced_publish(layout, run.run_id, [(staged, f"{root}/{raster}")])
    return _done(layout, scene, sink.commit(_batch(row, f"{output_uri.rstrip('/')}/{raster}", pixels, sums, None)))


def _done(layout: Layout, scene: str, committed: Committed) -> Committed:
    """The scene's row is committed: its tiles are no longer needed."""
    layout.fs.delete_dir(layout.tiles(scene))
    return committed


def _write_raster(fs: pafs.FileSystem, pieces: list[str], row: dict, scratch: str, run: RunInfo) -> str:
    """Every tile's own region into a tiled GeoTIFF, then a COG of it; returns the COG's local path."""
    import rasterio
    from rasterio.shutil import copy as gdal_copy
    from rasterio.windows import Window

    geo = {}
    if row["crs"] and row["geotransform"]:
        from affine import Affine

        geo = {"crs": row["crs"], "transform": Affine.from_gdal(*row["geotransform"])}
    dtype = "uint8" if len(run.class_names) <= 255 else "uint16"
    profile = {"driver": "GTiff", "height": row["height"], "width": row["width"], "count": 1, "dtype": dtype,
               "nodata": 255, "tiled": True, "blockxsize": 512, "blockysize": 512, "compress": "deflate",
               "bigtiff": "IF_SAFER", **geo}  # fmt: skip
    plain, cog = os.path.join(scratch, "mask.tif"), os.path.join(scratch, "cog.tif")
    tags = {"CLASS_NAMES": json.dumps(list(run.class_names)), "FCN_IMAGE_ID": row["image_id"],
            "FCN_MODEL": run.model, "FCN_RUN_ID": run.run_id}  # fmt: skip
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB * 1024**2, GDAL_NUM_THREADS="ALL_CPUS"):  # bytes in rasterio
        with rasterio.open(plain, "w", **profile) as dst:
            dst.update_tags(**tags)
            for path in pieces:
                parquet = pq.ParquetFile(fs.open_input_file(path))
                for batch in parquet.iter_batches(batch_size=8, columns=["tile", "mask_png"]):
                    for tile, png in zip(batch["tile"].to_pylist(), batch["mask_png"].to_pylist(), strict=True):
                        t = TileRow.from_vector(tile)
                        own = np.asarray(Image.open(io.BytesIO(png)))[
                            t.oy0 - t.y0 : t.oy1 - t.y0, t.ox0 - t.x0 : t.ox1 - t.x0
                        ]
                        dst.write(own.astype(dtype), 1, window=Window(t.ox0, t.oy0, t.ox1 - t.ox0, t.oy1 - t.oy0))
        gdal_copy(plain, cog, driver="COG", COMPRESS="DEFLATE", BLOCKSIZE=512, OVERVIEW_RESAMPLING="NEAREST",
                  BIGTIFF="IF_SAFER", NUM_THREADS="ALL_CPUS")  # fmt: skip
    return cog


def _batch(row: dict, mask_uri: str | None, pixels, sums, error: str | None) -> dict[str, np.ndarray]:
    """The scene's row as the sink's one-row batch."""
    ok = error is None
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.where(pixels > 0, sums / np.maximum(pixels, 1), np.nan)

    def one(value, dtype=object):
        array = np.empty(1, dtype=dtype)
        array[0] = value
        return array

    return {
        "image_id": one(row["image_id"]), "source": one(row["source"]), "source_version": one(row["source_version"]),
        "frame": np.array([-1], np.int32), "status": one("ok" if ok else "error"), "error": one(error),
        "height": np.array([row["height"] * ok], np.int32), "width": np.array([row["width"] * ok], np.int32),
        "mask_png": one(None), "mask_uri": one(mask_uri), "class_pixels": pixels[None] * ok,
        "class_confidence": confidence[None], "crs": one(row["crs"]),
        "geotransform": np.asarray([row["geotransform"] or [np.nan] * 6], float), "node": one("stitch"),
    }  # fmt: skip
