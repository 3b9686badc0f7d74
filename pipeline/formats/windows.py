"""Reading tiled TIFF, BigTIFF, COG and pyramidal slides by window (rasterio/GDAL), never the whole image.

GDAL reads through a Python file object (rasterio's ``opener``), so local files and S3 objects (range
requests through fsspec) read the same way and only the blocks a window needs are fetched. A pyramid
level is GDAL's overview (``--level N`` is overview N-1; level 0 the full image).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .rasters import RasterOptions, to_rgb


@dataclass(frozen=True)
class SceneInfo:
    """What the header of a scene says, at the chosen pyramid level.

    Args:
        height, width: pixels at ``level``.
        bands: bands in the file.
        dtype: their numpy dtype name.
        nodata: the file's no-data value, if any.
        crs: ``EPSG:code`` (or WKT) when georeferenced.
        geotransform: GDAL geotransform at ``level`` when georeferenced.
        block: internal ``(height, width)`` of a tile or strip.
        levels: pyramid levels in the file (1 without overviews).
        level: the level read.
    """

    height: int
    width: int
    bands: int
    dtype: str
    nodata: float | None
    crs: str | None
    geotransform: tuple[float, ...] | None
    block: tuple[int, int]
    levels: int
    level: int = 0

    @property
    def tiled(self) -> bool:
        """Blocks narrower than the image: a window reads only its own blocks (a strip reads whole rows)."""
        return self.block[1] < self.width


@contextlib.contextmanager
def open_scene(uri: str, open_file: Callable, level: int = 0):
    """The rasterio dataset of ``uri`` at pyramid ``level``, read through ``open_file(path, mode)``.

    Raises:
        ValueError: the file is not a raster GDAL reads, or has no such level.
    """
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    kwargs = {"overview_level": level - 1} if level > 0 else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # slides and plain TIFFs have no CRS
        try:
            src = rasterio.open(uri, opener=open_file, **kwargs)
        except RasterioIOError as exc:
            if level > 0:
                raise ValueError(f"{uri} has no pyramid level {level} (--level): {exc}") from None
            raise ValueError(f"{uri} cannot be read by window: {exc}") from None
        with src:
            yield src


def scene_info(src, level: int = 0) -> SceneInfo:
    """The header of an open dataset (``open_scene``)."""
    georeferenced = src.crs is not None and not src.transform.is_identity
    crs = None
    if georeferenced:
        code = src.crs.to_epsg()
        crs = f"EPSG:{code}" if code else src.crs.to_wkt()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        overviews = len(src.overviews(1)) if src.count else 0
    return SceneInfo(
        height=src.height, width=src.width, bands=src.count, dtype=src.dtypes[0], nodata=src.nodata,
        crs=crs, geotransform=tuple(src.transform.to_gdal()) if georeferenced else None,
        block=tuple(src.block_shapes[0]), levels=level + overviews + 1, level=level,
    )  # fmt: skip


def read_rgb(src, rows: tuple[int, int], cols: tuple[int, int], options: RasterOptions):
    """``(rgb [h, w, 3] uint8, valid [h, w] bool or None)`` of one window, scaled like a whole TIFF.

    Args:
        src: an open dataset.
        rows, cols: ``(start, end)`` of the window.
        options: bands, value range (give one for 16-bit or float scenes: see ``scene_range``) and no-data.
    """
    from rasterio.windows import Window

    window = Window(cols[0], rows[0], cols[1] - cols[0], rows[1] - rows[0])
    data = np.moveaxis(src.read(window=window), 0, -1)  # [h, w, bands]
    nodata = options.nodata if options.nodata is not None else src.nodata
    valid = None
    if nodata is not None:
        valid = ~np.all((data == nodata) | (np.isnan(data) if np.isnan(nodata) else False), axis=-1)
        valid = None if valid.all() else valid
    if np.issubdtype(data.dtype, np.floating):
        valid = np.isfinite(data).all(axis=-1) & (True if valid is None else valid)
        valid = None if valid.all() else valid
    return to_rgb(data, valid, options, "scene"), valid


def scene_range(src, options: RasterOptions) -> RasterOptions:
    """Options with one value range for every window of a 16-bit or float scene.

    A stretch per window would give each tile other colours and the masks seams; the percentiles are
    taken once, over the smallest pyramid level (or a 1/16 decimated read where there is none).
    """
    if src.dtypes[0] == "uint8" or options.value_range is not None:
        return options
    from dataclasses import replace

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        factor = max(src.overviews(1) or [16])
    shape = (src.count, max(1, src.height // factor), max(1, src.width // factor))
    data = np.moveaxis(src.read(out_shape=shape), 0, -1).astype(np.float64)
    bands = list(options.bands or range(1, min(src.count, 3) + 1))
    data = data[..., [b - 1 for b in bands]]
    nodata = options.nodata if options.nodata is not None else src.nodata
    finite = np.isfinite(data).all(axis=-1)
    if nodata is not None and not np.isnan(nodata):
        finite &= ~np.all(data == nodata, axis=-1)
    sample = data[finite] if finite.any() else data.reshape(-1, data.shape[-1])
    low, high = np.percentile(sample, options.stretch)
    return replace(options, value_range=(float(low), float(high)))
