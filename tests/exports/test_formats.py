"""Each export format on its own, read back by its own ecosystem's reader (no Ray)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.exports import parse_formats
from pipeline.exports.cog import cog_bytes
from pipeline.exports.geoparquet import geoparquet_table, regions
from pipeline.exports.georef import ExportError, file_stem, georef
from pipeline.exports.stac import collection_dict, stac_item
from pipeline.loop.synthetic import make_scene

NAMES = ["background", "water", "vegetation", "building", "road"]
UTM = ("EPSG:32633", [500_000.0, 0.5, 0.0, 5_000_000.0, 0.0, -0.5])
WGS84 = ("EPSG:4326", [15.0, 5e-6, 0.0, 45.0, 0.0, -5e-6])


def scene_mask(height=300, width=420, seed=1) -> np.ndarray:
    """A synthetic class map with a no-data corner, as the GeoTIFF decoder leaves it."""
    mask = make_scene(seed, height, width)[1].astype(np.uint8)
    mask[: height // 4, : width // 3] = 255
    return mask


def test_formats_parse_all_and_stac_brings_its_cog():
    assert parse_formats("all") == ["cog", "geoparquet", "stac", "dicom-seg", "hf", "coco"]
    assert parse_formats("stac") == ["cog", "stac"]
    with pytest.raises(ValueError, match="unknown export format shp.*choose from cog"):
        parse_formats("cog,shp")


def test_a_broken_crs_or_transform_is_an_export_error_and_no_crs_is_none():
    assert georef(None, None) is None
    with pytest.raises(ExportError, match="'EPSG:99999999' is not a CRS pyproj knows"):
        georef("EPSG:99999999", UTM[1])
    with pytest.raises(ExportError, match="without a usable geotransform"):
        georef("EPSG:32633", None)
    with pytest.raises(ExportError, match="degenerate"):
        georef("EPSG:32633", [0, 0, 0, 0, 0, 0])


def test_file_stems_are_safe_and_distinct():
    assert file_stem("ab12") == "ab12"
    stems = {file_stem(i) for i in ("a#3", "a_f3", "a/b", "a b", "a#4")}
    assert len(stems) == 5 and all("/" not in s and "#" not in s and " " not in s for s in stems)


@pytest.mark.parametrize("crs", [UTM, WGS84], ids=["utm", "wgs84"])
def test_cog_is_valid_and_rasterio_reads_back_the_mask_crs_and_transform(tmp_path, crs):
    import rasterio
    from rio_cogeo.cogeo import cog_validate

    geo, mask = georef(*crs), scene_mask(1100, 900)
    path = tmp_path / "mask.tif"
    path.write_bytes(cog_bytes(mask, geo, NAMES, {"FCN_MODEL": "m"}))
    valid, errors, _ = cog_validate(str(path), quiet=True)
    assert valid, errors
    with rasterio.open(path) as src:
        assert src.crs == geo.crs and src.transform.almost_equals(geo.transform)
        assert src.nodata == 255 and src.dtypes == ("uint8",) and src.block_shapes == [(512, 512)]
        np.testing.assert_array_equal(src.read(1), mask)
        assert src.overviews(1) == [2]
        assert src.tags()["OVERVIEW_RESAMPLING"] == "MODE"  # never averaging class ids
        assert json.loads(src.tags()["CLASS_NAMES"]) == NAMES
        overview = src.read(1, out_shape=(550, 450))
    assert set(np.unique(overview)) <= set(np.unique(mask))  # an overview holds class ids, not their averages


@pytest.mark.parametrize("crs", [UTM, WGS84], ids=["utm", "wgs84"])
def test_polygons_rasterised_back_reproduce_the_mask_and_count_its_pixels(crs):
    from rasterio.features import rasterize
    from shapely import from_wkb

    geo, mask = georef(*crs), scene_mask()
    rows = regions("img", mask, geo, NAMES, {1: 0.75})
    shapes = ((from_wkb(r["geometry"]), r["class_id"]) for r in rows)
    back = rasterize(shapes, out_shape=mask.shape, transform=geo.transform, fill=255, dtype="uint8")
    np.testing.assert_array_equal(back, mask)
    counts = np.bincount([r["class_id"] for r in rows], weights=[r["pixels"] for r in rows], minlength=len(NAMES))
    np.testing.assert_array_equal(counts, np.bincount(mask[mask != 255], minlength=len(NAMES)))
    unit = {"EPSG:32633": "m^2", "EPSG:4326": "degree^2"}[crs[0]]
    assert {r["area_unit"] for r in rows} == {unit}
    assert all(abs(r["area"] - r["pixels"] * geo.pixel_area) < 1e-6 * r["area"] for r in rows)
    assert {r["mean_confidence"] for r in rows if r["class_id"] == 1} == {0.75}
    assert all(r["mean_confidence"] is None for r in rows if r["class_id"] != 1)


def test_min_area_drops_small_regions_and_simplify_keeps_areas_and_validity():
    import shapely

    geo, mask = georef(*UTM), scene_mask()
    every = regions("img", mask, geo, NAMES, {})
    large = regions("img", mask, geo, NAMES, {}, min_area=100.0)
    assert 0 < len(large) < len(every) and min(r["area"] for r in large) >= 100.0
    simple = regions("img", mask, geo, NAMES, {}, simplify=1.0)
    assert [r["area"] for r in simple] == [r["area"] for r in every]
    before = sum(len(shapely.get_coordinates(shapely.from_wkb(r["geometry"]))) for r in every)
    after = sum(len(shapely.get_coordinates(shapely.from_wkb(r["geometry"]))) for r in simple)
    assert after < before and all(shapely.from_wkb(r["geometry"]).is_valid for r in simple)


def test_geoparquet_is_read_by_geopandas_with_its_crs_and_by_duckdb(tmp_path):
    import duckdb
    import geopandas
    import pyarrow.parquet as pq

    geo, mask = georef(*UTM), scene_mask()
    rows = regions("img", mask, geo, NAMES, {})
    pq.write_table(geoparquet_table(rows, geo, {b"fcn.model": b"m"}), tmp_path / "part.parquet")
    frame = geopandas.read_parquet(tmp_path / "part.parquet")
    assert frame.crs.to_epsg() == 32633 and len(frame) == len(rows)
    assert set(frame.geom_type) == {"Polygon"}
    np.testing.assert_allclose(frame.area, frame["area"])
    meta = json.loads(pq.read_schema(tmp_path / "part.parquet").metadata[b"geo"])
    column = meta["columns"]["geometry"]
    assert meta["version"] == "1.1.0" and column["encoding"] == "WKB" and column["geometry_types"] == ["Polygon"]
    assert column["covering"]["bbox"]["xmin"] == ["bbox", "xmin"]
    np.testing.assert_allclose(column["bbox"], frame.total_bounds)
    total = duckdb.sql(f"select sum(pixels) from '{tmp_path}/part.parquet'").fetchall()[0][0]
    assert total == int((mask != 255).sum())
    try:  # DuckDB's spatial extension, where this machine has it (it is never downloaded here)
        duckdb.sql("load spatial")
    except duckdb.Error:
        return
    area = duckdb.sql(f"select sum(st_area(geometry)) from '{tmp_path}/part.parquet'").fetchall()[0][0]
    assert abs(area - frame.area.sum()) < 1e-6 * area


def test_stac_item_and_collection_pass_pystacs_schemas_and_carry_projection_and_classes():
    import pystac
    import pystac.validation
    from pystac.extensions.classification import ClassificationExtension
    from pystac.extensions.projection import ProjectionExtension

    geo = georef(*UTM)
    row = {"image_id": "img#2", "source": "s3://b/img.tif", "height": 300, "width": 420,
           "run_id": "20261127T051234Z-ab", "model": "m", "class_pixels": [10, 0, 5, 0, 0]}  # fmt: skip
    item_dict = stac_item(row, geo, file_stem("img#2"), NAMES)
    # the core schemas ship with pystac; the extensions' schemas are online only (this machine has no internet)
    pystac.validation.validate_dict(item_dict, extensions=[])
    item = pystac.Item.from_dict(item_dict)
    proj = ProjectionExtension.ext(item)
    assert proj.code == "EPSG:32633" and proj.shape == [300, 420] and proj.transform == [0.5, 0, 500_000, 0, -0.5, 5e6]
    assert ProjectionExtension.get_schema_uri() in item.stac_extensions
    classes = ClassificationExtension.ext(item.assets["mask"]).classes
    assert [(c.value, c.name) for c in classes[:5]] == list(enumerate(NAMES)) and classes[-1].nodata
    assert classes[0].count == 10 and item.assets["mask"].href == f"../../cog/{file_stem('img#2')}.tif"
    assert item.datetime.isoformat() == "2026-11-27T05:12:34+00:00"
    lon, lat = item.geometry["coordinates"][0][0]
    assert 14 < lon < 16 and 44 < lat < 46  # UTM 33N at 5,000 km north
    collection = collection_dict(None, [{**item_dict, "_stem": "a"}], NAMES)
    pystac.validation.validate_dict(collection, extensions=[])
    assert [link["href"] for link in collection["links"] if link["rel"] == "item"] == ["./items/a.json"]
    wider = collection_dict(collection, [{**item_dict, "bbox": [10.0, 40.0, 11.0, 41.0], "_stem": "b"}], NAMES)
    assert wider["extent"]["spatial"]["bbox"][0][:2] == [10.0, 40.0]
    assert len([link for link in wider["links"] if link["rel"] == "item"]) == 2
