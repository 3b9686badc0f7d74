"""Satellite and medical inputs through the whole job: GeoTIFF, DICOM, 16-bit, huge images in tiles."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
import tifffile
from imagefiles import CLASSES
from outputs import check_contract, read_tables
from PIL import Image
from pydicom.data import get_testdata_file

from jobs.segment import main
from pipeline.config import RunConfig
from pipeline.formats.rasters import RasterOptions, decode_dicom, decode_tiff
from pipeline.stages.decode import decode_batch
from pipeline.stages.segment import Segmenter
from pipeline.stages.tiles import tile_grid

GEOKEYS = [1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 32633]  # projected, pixel-is-area, UTM 33N


def geotiff(path, height=60, width=80, bands=5, nodata=0):
    data = (np.random.default_rng(0).integers(100, 4000, (height, width, bands))).astype(np.uint16)
    data[:10, :, :] = nodata  # a no-data strip along the top
    tags = [
        (33550, "d", 3, (10.0, 10.0, 0.0), False),
        (33922, "d", 6, (0.0, 0.0, 0.0, 500000.0, 4600000.0, 0.0), False),
        (34735, "H", len(GEOKEYS), GEOKEYS, False),
        (42113, "s", 0, f"{nodata}", False),
    ]
    tifffile.imwrite(path, data, photometric="minisblack", planarconfig="contig", extratags=tags)
    return data


def dicom_bytes(name: str) -> bytes:
    """A DICOM file that pydicom ships (written by others, not by us)."""
    return Path(get_testdata_file(name)).read_bytes()


def test_geotiff_bands_stretch_nodata_and_georeferencing(tmp_path):
    data = geotiff(tmp_path / "scene.tif")
    (raster,) = decode_tiff((tmp_path / "scene.tif").read_bytes(), RasterOptions(bands=(3, 2, 1)), 10**8)
    assert raster.rgb.shape == (60, 80, 3) and raster.rgb.dtype == np.uint8
    assert raster.crs == "EPSG:32633"
    assert raster.geotransform == (500000.0, 10.0, 0.0, 4600000.0, 0.0, -10.0)
    assert not raster.valid[:10].any() and raster.valid[10:].all()
    band3 = data[10:, :, 2].astype(float)
    assert np.corrcoef(band3.ravel(), raster.rgb[10:, :, 0].ravel().astype(float))[0, 1] > 0.99
    with pytest.raises(ValueError, match="--bands"):
        decode_tiff((tmp_path / "scene.tif").read_bytes(), RasterOptions(bands=(6, 2, 1)), 10**8)


def test_dicom_rescale_window_monochrome1_and_frames(tmp_path):
    ct = dicom_bytes("CT_small.dcm")
    (frame,) = decode_dicom(ct, RasterOptions(), 10**8)
    assert frame.rgb.shape == (128, 128, 3) and frame.frame is None
    windowed = decode_dicom(ct, RasterOptions(dicom_window=(40.0, 400.0)), 10**8)[0].rgb
    assert not np.array_equal(windowed, frame.rgb)
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    normal = decode_dicom(dicom_bytes("MR_small.dcm"), RasterOptions(), 10**8)[0].rgb
    ds.PhotometricInterpretation = "MONOCHROME1"
    buffer = io.BytesIO()
    ds.save_as(buffer)
    inverted = decode_dicom(buffer.getvalue(), RasterOptions(), 10**8)[0].rgb
    assert np.array_equal(inverted, 255 - normal)
    frames = decode_dicom(dicom_bytes("rtdose.dcm"), RasterOptions(), 10**8)
    assert [f.frame for f in frames] == list(range(15))


def test_formats_through_the_whole_job(tmp_path, ray_local, weights):
    folder = tmp_path / "in"
    folder.mkdir()
    geotiff(folder / "scene.tif")
    for name in ("CT_small.dcm", "rtdose.dcm"):
        (folder / name).write_bytes(dicom_bytes(name))
    Image.fromarray((np.arange(40 * 52).reshape(40, 52) * 30).astype(np.uint16)).save(folder / "deep.png")
    (folder / "bomb.png").write_bytes(_png(Image.new("L", (2000, 1500))))
    argv = ["--input", str(folder), "--output", str(tmp_path / "out"), "--weights", weights, "--bands", "3,2,1"]
    argv += ["--classes", ",".join(CLASSES), "--actors-max", "1", "--max-pixels", "2000000", "--input-format", "files"]
    assert main(argv) == 0
    masks, stats = read_tables(str(tmp_path / "out"))
    check_contract(masks, stats, CLASSES)
    rows = {(r["source"].rsplit("/", 1)[-1], r["frame"]): r for r in masks.to_pylist()}
    scene = rows[("scene.tif", None)]
    assert (scene["height"], scene["width"], scene["crs"]) == (60, 80, "EPSG:32633")
    assert scene["geotransform"] == [500000.0, 10.0, 0.0, 4600000.0, 0.0, -10.0]
    mask = np.asarray(Image.open(io.BytesIO(scene["mask_png"])))
    assert (mask[:10] == 255).all() and (mask[10:] != 255).all() and sum(scene["class_pixels"]) == 50 * 80
    assert sorted(f for name, f in rows if name == "rtdose.dcm") == list(range(15))
    assert rows[("CT_small.dcm", None)]["status"] == "ok" and rows[("deep.png", None)]["width"] == 52
    assert "--max-pixels" in rows[("bomb.png", None)]["error"]
    assert len({r["image_id"] for r in masks.to_pylist()}) == masks.num_rows == 19
    # physical area: DICOM PixelSpacing in mm^2, a metric projected CRS in m^2, nothing for a photo
    areas = {}
    for row in stats.to_pylist():
        areas.setdefault(row["image_id"], []).append((row["pixels"], row["area"], row["area_unit"]))
    ct = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    mm2 = float(ct.PixelSpacing[0]) * float(ct.PixelSpacing[1])
    assert all(
        u == "mm^2" and a == pytest.approx(p * mm2) for p, a, u in areas[rows[("CT_small.dcm", None)]["image_id"]]
    )
    assert all(u == "m^2" and a == p * 100.0 for p, a, u in areas[scene["image_id"]])
    assert all(a is None and u is None for _, a, u in areas[rows[("deep.png", None)]["image_id"]])


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("shape", [(300, 420), (64, 1000), (513, 97)])
def test_tile_owned_regions_partition_the_image(shape):
    covered = np.zeros(shape, np.int32)
    for t in tile_grid(*shape, tile=128, overlap=32):
        assert t.y1 - t.y0 == min(128, shape[0]) and t.x1 - t.x0 == min(128, shape[1])
        assert t.y0 <= t.oy0 < t.oy1 <= t.y1 and t.x0 <= t.ox0 < t.ox1 <= t.x1
        inner = [t.oy0 - t.y0 if t.y0 else 16, t.y1 - t.oy1 if t.y1 < shape[0] else 16]
        assert min(inner) >= 16  # every owned pixel is at least overlap / 2 from an inner tile border
        covered[t.oy0 : t.oy1, t.ox0 : t.ox1] += 1
    assert (covered == 1).all()


def tiled_and_whole(weights, image: np.ndarray, tile: int, overlap: int):
    batch = {
        "image_id": np.array(["x"], dtype=object),
        "source": np.array(["x"], dtype=object),
        "bytes": np.array([_png(Image.fromarray(image))], dtype=object),
        "error": np.array([None], dtype=object),
    }
    decoded = decode_batch(batch, resize=None, max_pixels=10**8)
    results = []
    for size in (tile, 4096):
        config = RunConfig(
            input="i", output="o", weights=weights, classes=list(CLASSES), tile_size=size, tile_overlap=overlap
        )
        results.append(Segmenter(config, storage={})(decoded))
    return results


def test_tiled_mask_agrees_with_untiled_mask(weights):
    from pipeline.loop.synthetic import make_scene

    image = make_scene(3, 600, 800)[0]  # 12 tiles of 256 px
    tiled, whole = tiled_and_whole(weights, image, tile=256, overlap=96)
    agreement = (tiled["mask"][0] == whole["mask"][0]).mean()
    assert tiled["mask"][0].shape == (600, 800)
    assert agreement >= 0.999, agreement
    assert tiled["class_pixels"][0].sum() == 600 * 800


def test_a_jpeg_compressed_geotiff_decodes_through_gdal_when_tifffile_lacks_the_codec(tmp_path):
    """JPEG tiles (COGs, slides) need imagecodecs in tifffile; GDAL reads them instead."""
    import rasterio
    from rasterio.transform import from_origin

    from pipeline.loop.synthetic import make_scene

    image = make_scene(2, 300, 260)[0]
    profile = {"driver": "GTiff", "height": 300, "width": 260, "count": 3, "dtype": "uint8", "tiled": True,
               "blockxsize": 128, "blockysize": 128, "compress": "jpeg", "photometric": "ycbcr",
               "crs": "EPSG:32633", "transform": from_origin(500_000, 5e6, 0.5, 0.5)}  # fmt: skip
    with rasterio.open(tmp_path / "jpeg.tif", "w", **profile) as dst:
        dst.write(np.moveaxis(image, -1, 0))
    (raster,) = decode_tiff((tmp_path / "jpeg.tif").read_bytes(), RasterOptions(), 10**8)
    assert raster.rgb.shape == (300, 260, 3) and raster.crs == "EPSG:32633" and raster.geotransform[1] == 0.5
    assert np.abs(raster.rgb.astype(int) - image).mean() < 6  # JPEG: close, not equal
