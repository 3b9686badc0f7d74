"""One Cloud-Optimized GeoTIFF per georeferenced mask (rio-cogeo): class ids, 255 no-data, mode overviews."""

from __future__ import annotations

import colorsys
import json
import os
import tempfile
import warnings

import numpy as np

from .georef import NODATA, Georef


def palette(count: int) -> dict[int, tuple[int, int, int, int]]:
    """A colour per class id (evenly spaced hues) so GIS tools show the classes apart; no-data transparent."""
    colours = {}
    for k in range(min(count, NODATA)):
        r, g, b = colorsys.hsv_to_rgb((k * 0.618034) % 1.0, 0.65, 0.95)
        colours[k] = (int(r * 255), int(g * 255), int(b * 255), 255)
    colours[NODATA] = (0, 0, 0, 0)
    return colours


def cog_bytes(mask: np.ndarray, geo: Georef, class_names: list[str], tags: dict[str, str]) -> bytes:
    """The mask as a COG: tiled, deflate, overviews by mode (never averaging class ids), class names in its tags.

    Args:
        mask: ``[H, W]`` class ids, 255 where no-data (uint8; uint16 above 256 classes).
        geo: the source's CRS and transform.
        class_names: names by class id, written as the ``CLASS_NAMES`` tag (JSON) and the band description.
        tags: more dataset tags (model, run id, image id).
    """
    import rasterio
    from rasterio.io import MemoryFile
    from rio_cogeo.cogeo import cog_translate
    from rio_cogeo.profiles import cog_profiles

    dtype = "uint8" if mask.dtype == np.uint8 else "uint16"
    profile = {
        "driver": "GTiff", "dtype": dtype, "count": 1, "height": mask.shape[0], "width": mask.shape[1],
        "crs": geo.crs, "transform": geo.transform, "nodata": NODATA,
    }  # fmt: skip
    all_tags = {**tags, "CLASS_NAMES": json.dumps(class_names)}
    with MemoryFile() as memory, tempfile.TemporaryDirectory(prefix="fcn-cog-") as scratch:
        with memory.open(**profile) as src:
            src.write(mask.astype(dtype), 1)
            src.update_tags(**all_tags)
            src.set_band_description(1, "class id (" + ", ".join(f"{k}={n}" for k, n in enumerate(class_names)) + ")")
        target = os.path.join(scratch, "mask.tif")
        with memory.open() as src, warnings.catch_warnings():
            # "color interpretation was set to Palette": what the colour map is for
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", PendingDeprecationWarning)  # rio-cogeo's own use of affine
            cog_translate(
                src,
                target,
                cog_profiles.get("deflate"),
                nodata=NODATA,
                overview_resampling="mode",
                in_memory=True,
                quiet=True,
                colormap=palette(len(class_names)) if dtype == "uint8" else None,
                additional_cog_metadata=all_tags,
                forward_band_tags=True,
                config={"GDAL_TIFF_INTERNAL_MASK": True, "GDAL_NUM_THREADS": "1"},
            )
        with rasterio.Env(), open(target, "rb") as f:
            return f.read()
