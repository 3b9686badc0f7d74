"""What every export reads from one masks row: the class map, its no-data, and where it lies on Earth."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import numpy as np
from PIL import Image

NODATA = 255  # the masks' own no-data value (transparent pixels, GeoTIFF no-data)


class ExportError(ValueError):
    """A row cannot be exported; the message says why (it becomes an error of the export summary)."""


@dataclass(frozen=True)
class Georef:
    """The CRS and the affine transform of a mask, checked by pyproj and rasterio.

    Args:
        crs: a ``rasterio.crs.CRS``.
        transform: an ``affine.Affine`` from pixel (col, row) to CRS coordinates.
    """

    crs: object
    transform: object

    @property
    def projected(self) -> bool:
        return bool(self.crs.is_projected)

    @property
    def area_unit(self) -> str:
        """``m^2`` for a metric CRS, else the CRS's own unit squared (``degree^2`` for EPSG:4326)."""
        from pyproj import CRS

        axis = CRS.from_user_input(self.crs.to_wkt()).axis_info
        unit = axis[0].unit_name if axis else "unit"
        return "m^2" if unit in ("metre", "meter") else f"{unit}^2"

    @property
    def pixel_area(self) -> float:
        """Area of one pixel in CRS units squared (``|a*e - b*d|``, rotated grids too)."""
        t = self.transform
        return abs(t.a * t.e - t.b * t.d)

    def code(self) -> str | None:
        """``EPSG:32633`` where the CRS has an authority code, else None."""
        found = self.crs.to_authority()
        return f"{found[0]}:{found[1]}" if found else None


def georef(crs: str | None, geotransform: list[float] | None) -> Georef | None:
    """The row's georeferencing, or None when it has none; ``ExportError`` when it is there but broken.

    Args:
        crs: the row's ``crs`` column (``EPSG:code`` as written by the GeoTIFF decoder, or any pyproj input).
        geotransform: GDAL-order ``(x0, dx, rx, y0, ry, dy)``.
    """
    if not crs:
        return None
    from affine import Affine
    from pyproj import CRS
    from pyproj.exceptions import CRSError
    from rasterio.crs import CRS as RasterioCRS

    try:
        parsed = RasterioCRS.from_wkt(CRS.from_user_input(crs).to_wkt())
    except (CRSError, Exception) as exc:
        raise ExportError(
            f"crs {crs!r} is not a CRS pyproj knows ({type(exc).__name__}); fix the source's georeferencing"
        ) from None
    if geotransform is None or len(geotransform) != 6 or not np.all(np.isfinite(geotransform)):
        raise ExportError(
            f"crs {crs} without a usable geotransform ({geotransform}); the source's GeoTIFF tags are incomplete"
        )
    transform = Affine.from_gdal(*geotransform)
    if transform.is_degenerate:
        raise ExportError(f"geotransform {geotransform} is degenerate (a zero pixel size)")
    return Georef(parsed, transform)


def read_mask(png: bytes, height: int, width: int) -> np.ndarray:
    """The class map of a ``mask_png`` cell (uint8, or uint16 above 256 classes), checked against the row's size."""
    mask = np.asarray(Image.open(io.BytesIO(png)))
    if mask.shape != (height, width):
        raise ExportError(f"mask_png is {mask.shape[1]}x{mask.shape[0]}, the row says {width}x{height}")
    return mask


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def file_stem(image_id: str) -> str:
    """A file name for ``image_id`` that every store and GDAL accept, never shared by two ids.

    An id of ``[A-Za-z0-9._-]`` only is its own stem; any other (a frame's ``a#3``, a path-like id)
    has its other characters replaced and a short hash of the id appended: ``a#3`` -> ``a_f3-1b2c3d4e``.
    """
    import hashlib

    if not _UNSAFE.search(image_id) and not image_id.startswith("."):
        return image_id
    stem = _UNSAFE.sub("_", re.sub(r"#(\d+)$", r"_f\1", image_id)).lstrip(".")
    return f"{stem}-{hashlib.sha256(image_id.encode()).hexdigest()[:8]}"
