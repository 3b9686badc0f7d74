"""Huge scenes as tile rows: finding them when listing, and reading them window by window in Ray tasks.

A listed TIFF (tiled or striped TIFF, BigTIFF, COG, pyramidal slide) above ``--scene-pixels`` at
``--level`` (every tiled one when ``--level`` is above 0) is a scene. Each scene becomes read tasks of
``--scene-tile-rows`` rows of tiles; a task reads its rows of the image band by band (each pixel once,
but the overlap the next task re-reads) and yields decoded tile rows, the tiling of the in-memory path
(``grid``): a tile's ``valid`` is its own region only, so its mask and statistics hold exactly the
pixels it owns, and the overlap only feeds the model.
"""

from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..config import RunConfig
from ..formats.windows import SceneInfo, open_scene, read_rgb, scene_info, scene_range
from ..grid import axis_windows
from ..rows import ALL_VALID, DECODED_COLUMNS
from .sources import Listing
from .storage import fsspec_fs, is_s3

SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".svs")
# a TIFF smaller than --scene-pixels / 16 bytes (0.5 bit per pixel: 4 MiB at 64 MP) is not probed
PROBE_BITS_PER_PIXEL = 0.5
PROBE_THREADS = 16
TILES_PER_BLOCK = 4  # decoded tiles per block handed on: 12 MB at 1024 px, a forward batch on CPU
READ_CACHE_MB = 128  # GDAL block cache while reading a scene: a row of 512-px blocks of a 50,000 px RGB scene is 77 MB
READ_BLOCK = 64 * 1024  # read-ahead of scene reads: measured 1.11x the file in 65 requests (none: 1.09x in 187)
log = logging.getLogger(__name__)


def opener(uri: str, config: RunConfig):
    """The fsspec filesystem rasterio reads ``uri`` through: S3 with a small read-ahead (s3fs' default is
    50 MB, which would fetch far more than the windows), else the local disk."""
    if is_s3(uri):
        options = fsspec_fs(uri, config).storage_options
        return fsspec.filesystem("s3", default_block_size=READ_BLOCK, default_cache_type="readahead",
                                 skip_instance_cache=True, **options)  # fmt: skip
    return fsspec.filesystem("file")


def gdal_path(uri: str) -> str:
    """What rasterio is given with the opener: the path inside the filesystem (no ``s3://``)."""
    return uri.removeprefix("s3://")


def find_scenes(paths: list[str], sizes: list[int], scheme: str, config: RunConfig) -> dict[str, SceneInfo]:
    """The listed files that are scenes, by path, from their headers (a few range requests each).

    Args:
        paths: listed files (paths inside the input's filesystem).
        sizes: their sizes in bytes.
        scheme: ``s3://`` or ``""``.
        config: ``--scene-pixels``, ``--level`` and the S3 settings.
    """
    if not config.scene_pixels and not config.level:
        return {}
    candidates = [
        p for p, size in zip(paths, sizes, strict=True)
        if p.lower().endswith(SUFFIXES) and (size * 8 >= config.scene_pixels * PROBE_BITS_PER_PIXEL or config.level)
    ]  # fmt: skip

    def probe(path: str) -> SceneInfo | None:
        uri = scheme + path
        try:
            with open_scene(gdal_path(uri), opener(uri, config), config.level) as src:
                info = scene_info(src, config.level)
        except Exception:  # not a raster GDAL reads, or no such level: the whole-file path says why
            return None
        large = config.scene_pixels and info.height * info.width > config.scene_pixels
        return info if large or (config.level and info.tiled) else None

    with ThreadPoolExecutor(PROBE_THREADS) as pool:
        found = dict(zip(candidates, pool.map(probe, candidates), strict=True))
    scenes = {p: info for p, info in found.items() if info is not None}
    for path, info in scenes.items():
        log.info("scene %s: %dx%d at level %d, read by window as tile rows", path, info.width, info.height, info.level)
    return scenes


def scene_tasks(path: str, image_id: str, version: str | None, info: SceneInfo, config: RunConfig) -> list[dict]:
    """One item per ``--scene-tile-rows`` rows of tiles of one scene: what a read task needs."""
    rows = axis_windows(info.height, config.tile_size, config.tile_overlap)
    cols = len(axis_windows(info.width, config.tile_size, config.tile_overlap))
    step = config.scene_tile_rows
    header = json.dumps(asdict(info))
    return [
        {"path": path, "image_id": image_id, "version": version, "first_row": first,
         "rows": min(step, len(rows) - first), "tiles": min(step, len(rows) - first) * cols, "info": header}
        for first in range(0, len(rows), step)
    ]  # fmt: skip


def read_scene_tiles(batch: dict, config: RunConfig, scheme: str):
    """Decoded tile rows of each read item (``scene_tasks``), in blocks of ``TILES_PER_BLOCK``.

    Small blocks let Ray's backpressure hold the reading back while the actors are busy (a block per row
    of tiles would be 56 decoded tiles, 220 MB, on a 50,000 px scene). A row of tiles that cannot be read
    as a band is read tile by tile, so that a broken block makes only its own tiles error rows (naming the
    tile); the scene's row becomes an error when stitched.
    """
    import rasterio

    from ..formats.rasters import RasterOptions

    for k in range(len(batch["path"])):
        fields = json.loads(batch["info"][k])
        info = SceneInfo(**{**fields, "block": tuple(fields["block"]), "geotransform": _tuple(fields["geotransform"])})
        uri = scheme + batch["path"][k]
        rows = axis_windows(info.height, config.tile_size, config.tile_overlap)
        cols = axis_windows(info.width, config.tile_size, config.tile_overlap)
        first, count = int(batch["first_row"][k]), int(batch["rows"][k])
        item = {c: batch[c][k] for c in ("image_id", "version")}
        try:
            # GDAL's block cache (5% of the machine's memory by default) needs to hold one row of blocks
            with rasterio.Env(GDAL_CACHEMAX=READ_CACHE_MB * 1024**2), open_scene(gdal_path(uri), opener(uri, config),
                                                                       info.level) as src:  # fmt: skip
                options = scene_range(src, config.raster_options())
                for r in range(first, first + count):
                    yield from _blocks(_tile_row_batch(src, uri, item, info, rows, cols, r, options))
        except Exception as exc:  # the file itself cannot be opened any more: every tile of these rows fails
            reason = f"cannot read {uri}: {type(exc).__name__}: {exc}"
            for r in range(first, first + count):
                yield from _blocks(_tile_row_batch(None, uri, item, info, rows, cols, r, RasterOptions(), reason))


def _blocks(batch: dict[str, np.ndarray]):
    rows = len(batch["image_id"])
    for start in range(0, rows, TILES_PER_BLOCK):
        yield {k: v[start : start + TILES_PER_BLOCK] for k, v in batch.items()}


def _tile_row_batch(src, uri, item, info, rows, cols, r, options, failure=None) -> dict[str, np.ndarray]:
    """The decode stage's columns plus ``tile`` for the tiles of row of tiles ``r``."""
    y0, y1, oy0, oy1 = rows[r]
    band, band_valid, band_error = None, None, failure
    if failure is None:
        try:
            band, band_valid = read_rgb(src, (y0, y1), (0, info.width), options)
        except Exception:  # read tile by tile below: the error names the broken tile
            band = None
    out: dict[str, list] = {k: [] for k in DECODED_COLUMNS}
    for c, (x0, x1, ox0, ox1) in enumerate(cols):
        index = r * len(cols) + c
        image, valid, error = None, None, band_error
        if error is None and band is not None:
            image = band[:, x0:x1]
            valid = band_valid[:, x0:x1] if band_valid is not None else None
        elif error is None:
            try:
                image, valid = read_rgb(src, (y0, y1), (x0, x1), options)
            except Exception as exc:
                error = f"tile {index} (rows {y0}-{y1}, columns {x0}-{x1}) of {uri}: {type(exc).__name__}: {exc}"
        out["image_id"].append(item["image_id"])
        out["source"].append(uri)
        out["source_version"].append(item["version"])
        out["frame"].append(-1)
        out["height"].append(y1 - y0 if error is None else 0)
        out["width"].append(x1 - x0 if error is None else 0)
        out["image"].append(np.ascontiguousarray(image) if error is None else np.zeros((1, 1, 3), np.uint8))
        # no-data only: the region the tile owns is built by the actor from ``tile`` (Segmenter.valid)
        out["valid"].append(valid if valid is not None else ALL_VALID)
        out["crs"].append(info.crs or "")  # never an all-None column: see rows.strings
        out["geotransform"].append(np.asarray(info.geotransform or [np.nan] * 6, float))
        out["error"].append(error)
        out["jpeg"].append(b"")
        grid = len(rows) * len(cols)
        out["tile"].append(np.array([info.height, info.width, y0, y1, x0, x1, oy0, oy1, ox0, ox1, index, grid]))
        out["pixel_area"].append(np.nan)  # a GeoTIFF's area comes from its CRS and transform (sink)
    return _arrays(out)


def _tuple(values: list | None) -> tuple | None:
    return None if values is None else tuple(values)


def _arrays(out: dict[str, list]) -> dict[str, np.ndarray]:
    arrays = {}
    for key, values in out.items():
        if key in ("frame", "height", "width"):
            arrays[key] = np.asarray(values, np.int32)
        elif key == "pixel_area":
            arrays[key] = np.asarray(values, np.float64)
        elif key in ("geotransform", "tile"):
            arrays[key] = np.stack(values)
        else:
            arrays[key] = np.empty(len(values), dtype=object)
            arrays[key][:] = values
    return arrays


def scene_stem(image_id: str) -> str:
    """The scene's raster file name under ``scenes/`` (image ids are hex digests of the source URI)."""
    return os.path.basename(image_id)


def scene_reads(config: RunConfig, listing: Listing | None, committed: pa.Array) -> list[dict]:
    """The read tasks of the listed, uncommitted scenes (``io/scenes``): tiles as rows."""
    if listing is None or not listing.sizes:
        return []
    scheme = "s3://" if is_s3(config.input) else ""
    todo = pc.invert(pc.is_in(listing.ids, value_set=committed)).to_pylist()
    picked = [(p, s) for p, s, t in zip(listing.paths, listing.sizes, todo, strict=True) if t]
    found = find_scenes([p for p, _ in picked], [s for _, s in picked], scheme, config)
    ids = dict(zip(listing.paths, listing.ids.to_pylist(), strict=True))
    versions = dict(zip(listing.paths, listing.versions.to_pylist(), strict=True))
    return [task for path, info in found.items() for task in scene_tasks(path, ids[path], versions[path], info, config)]
