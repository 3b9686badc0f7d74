"""Real rasters, not synthetic ones: a float DEM GeoTIFF with NaN no-data, and one palette image saved
as PNG and as TIFF (matplotlib's sample data)."""

from __future__ import annotations

import io

import matplotlib.cbook
import numpy as np
import pytest
import rasterio
from affine import Affine
from imagefiles import CLASSES, batch
from PIL import Image

from pipeline.config import RunConfig
from pipeline.stages.decode import decode_batch
from pipeline.stages.postprocess import decode_png, finish_batch
from pipeline.stages.segment import Segmenter


@pytest.fixture(scope="module")
def nan_dem() -> tuple[bytes, np.ndarray]:
    """The Jacksboro fault DEM scaled up 4x (1376 x 1612, float32) with 150,000 NaN no-data pixels, as a
    GeoTIFF (UTM 16N, 10 m pixels, nodata=nan) written by GDAL."""
    elevation = np.asarray(matplotlib.cbook.get_sample_data("jacksboro_fault_dem.npz")["elevation"], np.float32)
    dem = np.kron(elevation, np.ones((4, 4), np.float32))
    nan = np.zeros(dem.shape, bool)
    nan[100:400, 50:550] = True  # 150,000 pixels
    dem[nan] = np.nan
    utm = {"crs": "EPSG:32616", "transform": Affine(10, 0, 500_000, 0, -10, 4_000_000)}
    profile = {"driver": "GTiff", "height": dem.shape[0], "width": dem.shape[1], "count": 1, "dtype": "float32",
               "nodata": np.nan, **utm}  # fmt: skip
    with rasterio.MemoryFile() as memory:
        with memory.open(**profile) as dst:
            dst.write(dem, 1)
        return memory.read(), nan


def test_nan_nodata_of_a_float_dem_geotiff_is_not_valid(nan_dem):
    blob, nan = nan_dem
    out = decode_batch(batch(blob), resize=None, max_pixels=10**8)
    assert out["error"][0] is None and out["crs"][0] == "EPSG:32616"
    valid = out["valid"][0]
    assert valid.shape == nan.shape and np.array_equal(~valid, nan)  # 150,000 no-data pixels, not 0
    grey = out["image"][0][..., 0]
    assert grey[~nan].min() < 10 and grey[~nan].max() > 245  # the stretch is over the valid elevations


def test_nan_nodata_of_a_float_dem_is_255_in_the_mask_and_not_counted(nan_dem, weights):
    blob, nan = nan_dem
    config = RunConfig(input="in", output="out", weights=weights, classes=list(CLASSES), device="cpu")
    decoded = decode_batch(batch(blob), resize=256, max_pixels=10**8)
    rows = finish_batch(Segmenter(config, storage={}, resize=256)(decoded))
    assert rows["error"][0] is None
    mask = decode_png(rows["mask_png"][0])
    assert mask.shape == nan.shape
    assert np.array_equal(mask == 255, nan)
    assert rows["class_pixels"][0].sum() == nan.size - nan.sum()


@pytest.mark.parametrize("sample", ["logo2.png", "Minduka_Present_Blue_Pack.png"])
def test_a_palette_tiff_decodes_to_the_same_pixels_as_the_palette_png(sample):
    with Image.open(matplotlib.cbook.get_sample_data(sample, asfileobj=False)) as image:
        palette = image.convert("RGB").quantize(64)
    assert palette.mode == "P"
    blobs = []
    for fmt in ("PNG", "TIFF"):
        buffer = io.BytesIO()
        palette.save(buffer, format=fmt)
        blobs.append(buffer.getvalue())
    out = decode_batch(batch(*blobs), resize=None, max_pixels=10**8)
    assert list(out["error"]) == [None, None]
    png, tiff = out["image"]
    assert np.array_equal(png, np.asarray(palette.convert("RGB")))
    assert np.array_equal(tiff, png)
    assert np.array_equal(out["valid"][0], out["valid"][1])
