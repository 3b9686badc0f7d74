"""Physical area of a mask's pixels: mm^2 where a DICOM file gives PixelSpacing, m^2 where a GeoTIFF's CRS is
projected in metres; unknown elsewhere (a photo, a geographic CRS whose pixel area varies with latitude)."""

from __future__ import annotations

import functools

import numpy as np


@functools.lru_cache(maxsize=256)
def metric(crs: str) -> bool:
    """Whether ``crs`` is projected with metre axes (pyproj), so that a pixel's area is constant, in m^2."""
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    try:
        parsed = CRS.from_user_input(crs)
    except CRSError:
        return False
    return parsed.is_projected and all(a.unit_name in ("metre", "meter") for a in parsed.axis_info[:2])


def pixel_areas(batch: dict[str, np.ndarray]) -> tuple[np.ndarray, list[str | None]]:
    """Area of one pixel per row and its unit: the decoder's ``pixel_area`` (mm^2), else from ``crs`` and
    ``geotransform`` (``|a*e - b*d|`` m^2); NaN and None where unknown."""
    rows = len(batch["image_id"])
    given = np.asarray(batch.get("pixel_area", np.full(rows, np.nan)), np.float64)
    areas, units = np.full(rows, np.nan), [None] * rows
    transforms = np.asarray(batch["geotransform"], np.float64)
    for i in range(rows):
        crs = batch["crs"][i]
        if np.isfinite(given[i]):
            areas[i], units[i] = given[i], "mm^2"
        elif isinstance(crs, str) and crs and np.isfinite(transforms[i]).all() and metric(crs):
            _, a, b, _, d, e = transforms[i]
            areas[i], units[i] = abs(a * e - b * d), "m^2"
    return areas, units
