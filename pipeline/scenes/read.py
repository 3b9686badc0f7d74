"""Huge scenes as tile rows: finding them when listing, and their tiles read window by window in the actors.

A listed TIFF (tiled or striped TIFF, BigTIFF, COG, pyramidal slide) above ``--scene-pixels`` at
``--level`` (every tiled one when ``--level`` is above 0) is a scene. Each scene becomes items of
``--scene-tile-rows`` rows of tiles; an item becomes one block of tile rows that say where each tile
lies and carry no pixels (``tile_rows``), cut as the in-memory path cuts (``grid``). The inference actor
reads each window itself (``WindowReader``); a tile's ``valid`` is its own region only (``Segmenter``),
so its mask and statistics hold exactly the pixels it owns, and the overlap only feeds the model.
"""

from __future__ import annotations

import json
import logging
import os
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict
from typing import NamedTuple

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..config import RunConfig
from ..formats.windows import SceneInfo, open_scene, read_rgb, scene_info, scene_range
from ..grid import TileRow, axis_windows
from ..io.sources import Listing
from ..io.storage import fsspec_fs, is_s3
from ..rows import ALL_VALID, DECODED_COLUMNS
from .blocks import CachedRanges

SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".svs")
# a TIFF smaller than --scene-pixels / 16 bytes (0.5 bit per pixel: 4 MiB at 64 MP): its header is not read
HEADER_BITS_PER_PIXEL = 0.5
HEADER_THREADS = 16
# what an actor reading a scene keeps between windows: GDAL's decoded blocks (``cache_bytes``) and the
# compressed bytes read (``range_bytes``)
READ_CACHE_BOUNDS = (32 * 1024**2, 768 * 1024**2)
READ_RANGES_BOUNDS = (16 * 1024**2, 512 * 1024**2)
ITEMS_PER_ACTOR = 2  # read items of a scene per inference actor, at least (``scene_items``)
OPEN_SCENES = 2  # scenes an actor keeps open (a header re-read costs range requests: its tile index)
NO_PIXELS = np.zeros((1, 1, 3), np.uint8)  # the image of a tile row until the actor reads its window
# each GDAL read one range request: windows are read in any order, so a read-ahead fetched bytes no later
# read used (64 KiB: 1.43x the file in tests/io/test_scene_tiles.py; none: 1.0005x, 154 requests)
READ_CACHE_TYPE = "none"
log = logging.getLogger(__name__)


class Scene(NamedTuple):
    """A listed, uncommitted scene (``listed_scenes``): what its read items are cut from (``scene_items``)."""

    path: str  # inside the input's filesystem (no ``s3://``)
    image_id: str
    version: str | None
    info: SceneInfo


class OpenScene(NamedTuple):
    """A scene a ``WindowReader`` keeps open between windows."""

    stack: ExitStack  # closes the dataset and clears the cached ranges
    src: object  # the rasterio dataset
    options: object  # its raster options (``formats.windows.scene_range``)
    cache: int  # GDAL's decoded block cache for it, bytes (``cache_bytes``)


def opener(uri: str, config: RunConfig):
    """The fsspec filesystem rasterio reads ``uri`` through: S3 without read-ahead (s3fs' default fetches
    50 MB, far more than a window), each read a range request, else the local disk."""
    if is_s3(uri):
        options = fsspec_fs(uri, config).storage_options
        return fsspec.filesystem("s3", default_cache_type=READ_CACHE_TYPE, skip_instance_cache=True, **options)
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
        if p.lower().endswith(SUFFIXES) and (size * 8 >= config.scene_pixels * HEADER_BITS_PER_PIXEL or config.level)
    ]  # fmt: skip

    def read_header(path: str) -> SceneInfo | None:
        uri = scheme + path
        try:
            with open_scene(gdal_path(uri), opener(uri, config), config.level) as src:
                info = scene_info(src, config.level)
        except Exception:  # not a raster GDAL reads, or no such level: the whole-file path says why
            return None
        large = config.scene_pixels and info.height * info.width > config.scene_pixels
        return info if large or (config.level and info.tiled) else None

    with ThreadPoolExecutor(HEADER_THREADS) as pool:
        found = dict(zip(candidates, pool.map(read_header, candidates), strict=True))
    scenes = {p: info for p, info in found.items() if info is not None}
    for path, info in scenes.items():
        log.info("scene %s: %dx%d at level %d, read by window as tile rows", path, info.width, info.height, info.level)
    return scenes


def scene_items(scene: Scene, config: RunConfig, actors: int = 1) -> list[dict]:
    """The read items of one scene: a few rows of tiles each, what one actor reads in order.

    An item is ``--scene-tile-rows`` rows of tiles at most, and fewer so that the pool gets at least
    ``ITEMS_PER_ACTOR`` items per actor, as many for each actor where the rows allow: one actor takes an
    item whole, so large items on a small scene would leave actors idle (3 items of 8 rows on 2 actors
    ran one actor alone for a third of a 20,000 px scene). The overlap between two items is read twice
    when two actors take them. Items are dicts: Ray Data reads them with ``from_items``.

    Args:
        scene: the scene (``listed_scenes``).
        config: the tile size, overlap and ``--scene-tile-rows``.
        actors: the largest pool the run may get.
    """
    info = scene.info
    rows = axis_windows(info.height, config.tile_size, config.tile_overlap)
    cols = len(axis_windows(info.width, config.tile_size, config.tile_overlap))
    # at least ITEMS_PER_ACTOR items per actor, and a multiple of the actors: 7 items of 8 rows on 2 actors
    # left one alone for the last item's 4 minutes (50,000 px); 8 items of 7 rows keep both busy
    count = max(ITEMS_PER_ACTOR * actors, -(-len(rows) // config.scene_tile_rows))
    step = max(1, -(-len(rows) // (-(-count // actors) * actors)))
    header = json.dumps(asdict(info))
    return [
        {"path": scene.path, "image_id": scene.image_id, "version": scene.version, "first_row": first,
         "rows": min(step, len(rows) - first), "tiles": min(step, len(rows) - first) * cols, "info": header}
        for first in range(0, len(rows), step)
    ]  # fmt: skip


def tile_count(info: SceneInfo, config: RunConfig) -> int:
    """Tiles of a scene: the work it gives the pool."""
    return len(axis_windows(info.height, config.tile_size, config.tile_overlap)) * len(
        axis_windows(info.width, config.tile_size, config.tile_overlap)
    )


def tile_rows(batch: dict, config: RunConfig, scheme: str):
    """One block per read item (``scene_items``): a row per tile saying where it lies, and no pixels.

    The inference actor reads each tile's window itself (``WindowReader``), so no decoded tile passes
    through Ray's object store: its pages, once touched, stay resident in every process that mapped them,
    and peak memory grew with the scene. A whole item (``--scene-tile-rows`` rows of tiles) goes to one
    actor, which reads its tiles row by row keeping the compressed bytes it read (``WindowReader``): each
    block is fetched once, but the overlap of the rows of tiles next to the item.
    """
    for k in range(len(batch["path"])):
        fields = json.loads(batch["info"][k])
        info = SceneInfo(**{**fields, "block": tuple(fields["block"]), "geotransform": _tuple(fields["geotransform"])})
        rows = axis_windows(info.height, config.tile_size, config.tile_overlap)
        cols = axis_windows(info.width, config.tile_size, config.tile_overlap)
        first, count = int(batch["first_row"][k]), int(batch["rows"][k])
        out: dict[str, list] = {c: [] for c in DECODED_COLUMNS}
        for r in range(first, first + count):
            y0, y1, oy0, oy1 = rows[r]
            for c, (x0, x1, ox0, ox1) in enumerate(cols):
                tile = TileRow(info.height, info.width, y0, y1, x0, x1, oy0, oy1, ox0, ox1,
                               index=r * len(cols) + c, count=len(rows) * len(cols))  # fmt: skip
                values = {
                    "image_id": batch["image_id"][k], "source": scheme + batch["path"][k],
                    "source_version": batch["version"][k], "frame": -1, "height": y1 - y0, "width": x1 - x0,
                    "image": NO_PIXELS, "valid": ALL_VALID, "crs": info.crs or "",  # never all None: rows.strings
                    "geotransform": np.asarray(info.geotransform or [np.nan] * 6, float), "error": None,
                    "jpeg": b"", "tile": tile.to_vector(),
                    "pixel_area": np.nan,  # a GeoTIFF's area comes from its CRS and transform (sink)
                }  # fmt: skip
                for key, value in values.items():
                    out[key].append(value)
        yield _arrays(out)


class WindowReader:
    """Reads the windows of scene tile rows (``tile_rows``) inside the inference actor.

    Keeps the last scenes it read open. Each row of tiles overlaps the next: the compressed bytes of the
    blocks a row of tiles spans stay in the reader (``scenes.blocks.CachedRanges``, ``range_bytes``), so each
    is fetched once, and GDAL's decoded block cache holds about two windows (``cache_bytes``), so the
    overlap between neighbouring tiles of a row is decoded once. Neither grows with the scene's width
    (for tiled files; a striped file's strips are as wide as the scene).

    Args:
        config: ``--level``, the raster options and the S3 settings.
    """

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self.scenes: OrderedDict[str, OpenScene] = OrderedDict()  # by URI

    def read(self, uri: str, tile: TileRow) -> tuple[np.ndarray | None, np.ndarray | None, str | None]:
        """``(rgb, valid or None, None)`` of one tile's window, or ``(None, None, reason)`` naming the tile.

        Args:
            uri: the scene's file.
            tile: where the tile lies (its row's ``tile`` vector: ``TileRow.from_vector``).
        """
        import rasterio

        y0, y1, x0, x1 = tile.y0, tile.y1, tile.x0, tile.x1
        try:
            scene = self.scene(uri)
        except Exception as exc:  # the file cannot be opened any more: each of its tiles says so
            return None, None, f"cannot read {uri}: {type(exc).__name__}: {exc}"
        try:
            with rasterio.Env(GDAL_CACHEMAX=scene.cache):  # bytes in rasterio
                image, valid = read_rgb(scene.src, (y0, y1), (x0, x1), scene.options)
            return np.ascontiguousarray(image), valid, None
        except Exception as exc:
            where = f"tile {tile.index} (rows {y0}-{y1}, columns {x0}-{x1}) of {uri}"
            return None, None, f"{where}: {type(exc).__name__}: {exc}"

    def scene(self, uri: str) -> OpenScene:
        if uri in self.scenes:
            self.scenes.move_to_end(uri)
            return self.scenes[uri]
        import rasterio

        while len(self.scenes) >= OPEN_SCENES:
            self.scenes.popitem(last=False)[1].stack.close()
        stack = ExitStack()
        try:
            ranges = CachedRanges(opener(uri, self.config), READ_RANGES_BOUNDS[0])
            stack.callback(ranges.clear)
            src = stack.enter_context(open_scene(gdal_path(uri), ranges, self.config.level))
            info = scene_info(src, self.config.level)
            ranges.capacity = range_bytes(info, ranges.size(gdal_path(uri)), self.config.tile_size)
            cache = cache_bytes(info, self.config.tile_size)
            with rasterio.Env(GDAL_CACHEMAX=cache):
                options = scene_range(src, self.config.raster_options())
        except BaseException:
            stack.close()
            raise
        self.scenes[uri] = OpenScene(stack, src, options, cache)
        return self.scenes[uri]

    def close(self) -> None:
        while self.scenes:
            self.scenes.popitem()[1].stack.close()


def _window_span(info: SceneInfo, tile: int) -> tuple[int, int]:
    """Rows and columns of the blocks one tile's window spans, at most (``tile / block + 1`` blocks a side)."""
    return min(tile + 2 * info.block[0], info.height), min(tile + 2 * info.block[1], info.width)


def cache_bytes(info: SceneInfo, tile: int) -> int:
    """GDAL's decoded block cache for reading ``info`` tile after tile: the blocks of two windows, within
    ``READ_CACHE_BOUNDS`` (12 MiB for an RGB scene in 512-px blocks and 1024-px tiles; a striped scene's
    strips span its width, so it needs a row of them: what a cache sized by the width measured, 1.076x).
    """
    rows, columns = _window_span(info, tile)
    needed = 2 * rows * columns * info.bands * np.dtype(info.dtype).itemsize
    low, high = READ_CACHE_BOUNDS
    return int(min(max(needed, low), high))


def range_bytes(info: SceneInfo, file_bytes: int, tile: int) -> int:
    """The compressed bytes kept between windows (``scenes.blocks.CachedRanges``): the share of the file under
    the rows of blocks a row of tiles spans, with half again for blocks that compress worse than the
    average, within ``READ_RANGES_BOUNDS`` (40 MiB for the 50,000 px JPEG scene of the benchmark: 647 MB).
    """
    rows, _ = _window_span(info, tile)
    low, high = READ_RANGES_BOUNDS
    return int(min(max(1.5 * file_bytes * rows / info.height, low), high))


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


def listed_scenes(config: RunConfig, listing: Listing | None, committed: pa.Array) -> list[Scene]:
    """The listed, uncommitted scenes (``find_scenes``)."""
    if listing is None or not listing.sizes:
        return []
    scheme = "s3://" if is_s3(config.input) else ""
    todo = pc.invert(pc.is_in(listing.ids, value_set=committed)).to_pylist()
    picked = [(p, s) for p, s, t in zip(listing.paths, listing.sizes, todo, strict=True) if t]
    found = find_scenes([p for p, _ in picked], [s for _, s in picked], scheme, config)
    ids = dict(zip(listing.paths, listing.ids.to_pylist(), strict=True))
    versions = dict(zip(listing.paths, listing.versions.to_pylist(), strict=True))
    return [Scene(path, ids[path], versions[path], info) for path, info in found.items()]
