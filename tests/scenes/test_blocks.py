"""What a scene reader keeps between windows: compressed byte ranges (``scenes.blocks``) and GDAL's cache size."""

from __future__ import annotations

import fsspec
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

from pipeline.formats.windows import SceneInfo
from pipeline.loop.synthetic import make_scene
from pipeline.scenes import read as scenes
from pipeline.scenes.blocks import CachedRanges


@pytest.fixture()
def tiled(tmp_path):
    """A 768 x 640 RGB tiled JPEG TIFF in 128-px blocks, and its pixels as a plain read gives them."""
    path = tmp_path / "scene.tif"
    profile = {"driver": "GTiff", "height": 768, "width": 640, "count": 3, "dtype": "uint8", "tiled": True,
               "blockxsize": 128, "blockysize": 128, "compress": "jpeg", "photometric": "ycbcr",
               "crs": "EPSG:32633", "transform": from_origin(500_000, 5e6, 0.5, 0.5)}  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.moveaxis(make_scene(3, 768, 640)[0], -1, 0))
    with rasterio.open(path) as src:
        return path, src.read()


def read(path, ranges: CachedRanges, window: Window) -> np.ndarray:
    """A window read through ``ranges`` by a dataset of its own (so GDAL's decoded cache cannot serve it)."""
    with rasterio.open(str(path), opener=ranges) as src:
        return src.read(window=window)


def test_a_block_read_again_comes_from_memory_not_the_file(tiled):
    path, pixels = tiled
    ranges = CachedRanges(fsspec.filesystem("file"), capacity=64 * 2**20)
    window = Window(100, 200, 300, 260)  # columns 100-400, rows 200-460: 3 x 4 blocks
    first = read(path, ranges, window)
    fetched = ranges.fetched
    assert (first == pixels[:, 200:460, 100:400]).all()
    assert 0 < fetched < path.stat().st_size / 2  # its own blocks and the header, not the file

    assert (read(path, ranges, window) == first).all()
    assert ranges.fetched == fetched  # every block and the header again: none read from the file
    below = read(path, ranges, Window(100, 384, 300, 256))  # shares the rows of blocks 384-460 only
    assert (below == pixels[:, 384:640, 100:400]).all()
    assert fetched < ranges.fetched < 2 * fetched  # only the new rows of blocks


def test_the_bytes_kept_stay_within_the_capacity(tiled):
    path, pixels = tiled
    ranges = CachedRanges(fsspec.filesystem("file"), capacity=20_000)  # a few JPEG blocks
    window = Window(0, 0, 640, 768)
    assert (read(path, ranges, window) == pixels).all()
    assert 0 < ranges.held <= 20_000
    fetched = ranges.fetched
    assert (read(path, ranges, window) == pixels).all()
    assert ranges.fetched > 1.5 * fetched  # the LRU kept the last blocks only: most were read again
    ranges.clear()
    assert ranges.held == 0 and not ranges.ranges


def test_a_scene_is_opened_to_be_read_only(tiled):
    path, _ = tiled
    ranges = CachedRanges(fsspec.filesystem("file"), capacity=2**20)
    with pytest.raises(ValueError, match="opened to be read"):
        ranges.open(str(path), "r+b")
    with pytest.raises(OSError, match="never removed"):
        ranges.rm(str(path))
    assert ranges.isfile(str(path)) and ranges.size(str(path)) == path.stat().st_size


def info(side: int, block: tuple[int, int]) -> SceneInfo:
    return SceneInfo(side, side, 3, "uint8", None, None, None, block, 1)


def test_what_a_reader_keeps_does_not_grow_with_a_tiled_scene():
    """GDAL's decoded cache holds two windows of a tiled scene whatever its width; a striped scene's strips
    span its width, so its cache grows with it; the compressed ranges follow the file's bytes per row."""
    assert scenes.cache_bytes(info(20_000, (512, 512)), 1024) == scenes.cache_bytes(info(50_000, (512, 512)), 1024)
    assert scenes.cache_bytes(info(50_000, (512, 512)), 1024) <= 32 * 2**20
    assert scenes.cache_bytes(info(20_000, (16, 20_000)), 1024) < scenes.cache_bytes(info(50_000, (16, 50_000)), 1024)
    # the benchmark's JPEG scenes: 106 MB at 20,000 px, 647 MB at 50,000 px; a row of tiles spans 2048 rows
    kept = scenes.range_bytes(info(20_000, (512, 512)), 106_000_000, 1024)
    assert kept == 16 * 2**20  # 15.9 MB: the lower bound
    assert scenes.range_bytes(info(50_000, (512, 512)), 647_000_000, 1024) == int(1.5 * 647e6 * 2048 / 50_000)
    assert scenes.range_bytes(info(50_000, (512, 512)), 10**12, 1024) == scenes.READ_RANGES_BOUNDS[1]
