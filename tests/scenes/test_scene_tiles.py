"""Huge scenes as tile rows: read by window, spread over the pool, stitched into a raster at ``mask_uri``."""

from __future__ import annotations

import io
import json

import duckdb
import numpy as np
import pyarrow.dataset as pads
import pytest
import rasterio
import tifffile
from PIL import Image
from rasterio.transform import from_origin
from runs import job

from pipeline.config import RunConfig
from pipeline.grid import TileRow
from pipeline.loop.synthetic import make_scene
from pipeline.scenes import read as scenes

SCENE = ["--tile-size", "256", "--tile-overlap", "32", "--scene-pixels", "500000", "--scene-tile-rows", "2"]


def scene_tiff(path, height=1100, width=900, block=128, seed=7) -> np.ndarray:
    """A tiled, deflate GeoTIFF (UTM 33N, no-data 0 in a corner) of a synthetic aerial scene."""
    image = make_scene(seed, height, width)[0]
    image[:150, :200] = 0
    profile = {"driver": "GTiff", "height": height, "width": width, "count": 3, "dtype": "uint8", "crs": "EPSG:32633",
               "transform": from_origin(500_000, 5e6, 0.5, 0.5), "tiled": True, "blockxsize": block,
               "blockysize": block, "compress": "deflate", "nodata": 0}  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.moveaxis(image, -1, 0))
    return image


def rows_by_source(out) -> dict[str, dict]:
    table = pads.dataset(f"{out}/masks", format="parquet").to_table()
    return {r["source"].rsplit("/", 1)[-1]: r for r in table.to_pylist()}


def test_scenes_match_the_in_memory_path_and_a_broken_tile_names_itself(ray_local, tmp_path, weights):
    source = tmp_path / "in"
    source.mkdir()
    scene_tiff(source / "scene.tif")
    scene_tiff(source / "broken.tif", seed=8)
    Image.fromarray(make_scene(1, 64, 80)[0]).save(source / "small.png")
    with tifffile.TiffFile(source / "broken.tif") as tif:
        offset = tif.pages[0].dataoffsets[20]
    with open(source / "broken.tif", "r+b") as f:  # garbage inside one deflate block
        f.seek(offset + 8)
        f.write(b"\xff" * 64)
    out, plain = tmp_path / "out", tmp_path / "plain"
    # what a killed run left: tiles of a scene never stitched, a raster no row points to
    (out / "_tiles/deadbeef").mkdir(parents=True)
    (out / "_tiles/deadbeef/part-0.parquet").write_bytes(b"not parquet")
    (out / "scenes").mkdir()
    (out / "scenes/orphan.tif").write_bytes(b"partial")

    assert job(source, out, str(weights), *SCENE) == 0
    assert job(source, plain, str(weights), *SCENE[:4], "--scene-pixels", "0") == 0  # today's in-memory tiles
    rows, reference = rows_by_source(out), rows_by_source(plain)
    assert sorted(rows) == ["broken.tif", "scene.tif", "small.png"]

    scene = rows["scene.tif"]
    assert scene["status"] == "ok" and scene["mask_png"] is None and scene["mask_uri"].endswith(".tif")
    with rasterio.open(scene["mask_uri"]) as src:
        stitched = src.read(1)
        assert src.crs.to_epsg() == 32633 and src.transform == from_origin(500_000, 5e6, 0.5, 0.5)
        assert src.overviews(1) and src.block_shapes == [(512, 512)] and src.nodata == 255
        assert json.loads(src.tags()["CLASS_NAMES"])
    expected = np.asarray(Image.open(io.BytesIO(reference["scene.tif"]["mask_png"])))
    assert (stitched == expected).mean() >= 0.999
    assert (stitched[:150, :200] == 255).all()
    assert scene["class_pixels"] == reference["scene.tif"]["class_pixels"]
    stats = duckdb.sql(f"select sum(pixels) from '{out}/class_stats/*.parquet' where image_id = ?",
                       params=[scene["image_id"]]).fetchall()[0][0]  # fmt: skip
    assert stats == sum(scene["class_pixels"])

    broken = rows["broken.tif"]
    assert broken["status"] == "error" and broken["mask_uri"] is None
    assert broken["error"].startswith("tile ") and "of " in broken["error"] and "broken.tif" in broken["error"]
    assert rows["small.png"]["status"] == "ok" and rows["small.png"]["mask_png"]
    assert sorted(p.name for p in (out / "scenes").iterdir()) == [f"{scene['image_id']}.tif"]
    assert not list((out / "_tiles").iterdir())

    # a rerun has nothing new; the committed scene is not redone
    assert job(source, out, str(weights), *SCENE) == 0
    assert len(duckdb.sql(f"select * from '{out}/masks/*.parquet'").fetchall()) == 3


def test_a_pyramid_level_of_a_slide_is_segmented_and_stitched_as_a_pyramidal_tiff(ray_local, tmp_path, weights):
    slide = np.tile(make_scene(3, 400, 400)[0], (2, 2, 1))[:700, :640]
    (tmp_path / "in").mkdir()
    with tifffile.TiffWriter(tmp_path / "in/slide.svs", bigtiff=True) as tiff:  # pyramid in SubIFDs, no CRS
        tiff.write(slide, tile=(128, 128), subifds=1, photometric="rgb", compression="zlib")
        tiff.write(slide[::2, ::2], tile=(128, 128), subfiletype=1, photometric="rgb", compression="zlib")
    assert job(tmp_path / "in", tmp_path / "out", str(weights), *SCENE[:4], "--level", "1") == 0
    (row,) = rows_by_source(tmp_path / "out").values()
    assert row["status"] == "ok" and (row["height"], row["width"]) == (350, 320) and row["crs"] is None
    with tifffile.TiffFile(row["mask_uri"]) as tif:
        assert tif.pages[0].is_tiled and tif.series[0].levels[0].shape == (350, 320)
        assert sum(np.bincount(tif.asarray()[tif.asarray() != 255].ravel())) == sum(row["class_pixels"])


@pytest.mark.parametrize("block", [128, 256])
def test_reading_a_scene_from_s3_fetches_about_its_size_once(s3_bucket, tmp_path, monkeypatch, block):
    """The actors' own reading, in this process, on moto: the bytes S3 sends over the file's size, with each
    of the scene's items read from a cold start (two actors taking items in turn: every item's first overlap
    and the header read again; an actor keeps the header, so this is the worse case)."""
    import boto3
    import s3fs

    scene_tiff(tmp_path / "scene.tif", height=2600, width=1300, block=block)  # 12 rows of tiles: 2 items of 6
    size = (tmp_path / "scene.tif").stat().st_size
    boto3.client("s3").upload_file(str(tmp_path / "scene.tif"), s3_bucket, "in/scene.tif")
    config = RunConfig(input=f"s3://{s3_bucket}/in", output=str(tmp_path / "out"), weights="random",
                       tile_size=256, tile_overlap=32, scene_pixels=1000, scene_tile_rows=6)  # fmt: skip
    fetched = []
    ranges, whole = s3fs.core.S3File._fetch_range, s3fs.S3FileSystem._cat_file

    def fetch_range(self, start, end):
        data = ranges(self, start, end)
        fetched.append(len(data))
        return data

    async def cat_file(self, path, *args, **kwargs):
        data = await whole(self, path, *args, **kwargs)
        fetched.append(len(data))
        return data

    monkeypatch.setattr(s3fs.core.S3File, "_fetch_range", fetch_range)
    monkeypatch.setattr(s3fs.S3FileSystem, "_cat_file", cat_file)
    path = f"{s3_bucket}/in/scene.tif"
    found = scenes.find_scenes([path], [size], "s3://", config)
    fetched.clear()  # the listing's header reads are the driver's, not the tasks'
    items = scenes.scene_items(scenes.Scene(path, "id", None, found[path]), config, actors=1)
    reader, tiles = scenes.WindowReader(config), 0
    for item in items:
        batch = {key: np.array([v], dtype=object) for key, v in item.items()}
        (rows,) = scenes.tile_rows(batch, config, "s3://")
        for source, tile in zip(rows["source"], rows["tile"], strict=True):
            row = TileRow.from_vector(tile)
            image, _, error = reader.read(source, row)
            assert error is None and image.shape == (row.y1 - row.y0, row.x1 - row.x0, 3)
            tiles += 1
        reader.close()  # the block cache and open file gone: the next item starts cold
    assert tiles == sum(i["tiles"] for i in items) and len(items) > 1
    assert 0.9 * size < sum(fetched) <= 1.2 * size, (sum(fetched), size)


def test_a_scene_from_s3_is_stitched_into_s3(ray_local, s3_bucket, tmp_path, weights):
    import boto3
    import s3fs

    image = scene_tiff(tmp_path / "scene.tif", height=800, width=700)  # 560,000 px: above --scene-pixels
    boto3.client("s3").upload_file(str(tmp_path / "scene.tif"), s3_bucket, "in/scene.tif")
    out = f"s3://{s3_bucket}/out"
    assert job(f"s3://{s3_bucket}/in", out, str(weights), *SCENE) == 0
    fs = s3fs.S3FileSystem()
    (row,) = pads.dataset(f"{s3_bucket}/out/masks", filesystem=fs, format="parquet").to_table().to_pylist()
    assert row["status"] == "ok" and row["mask_uri"] == f"{out}/scenes/{row['image_id']}.tif"
    with rasterio.MemoryFile(fs.cat_file(row["mask_uri"])) as memory, memory.open() as src:
        mask = src.read(1)
        assert src.crs.to_epsg() == 32633 and mask.shape == image.shape[:2]
    assert (mask[:150, :200] == 255).all() and int((mask != 255).sum()) == sum(row["class_pixels"])
    assert not fs.exists(f"{s3_bucket}/out/_tiles") or not fs.ls(f"{s3_bucket}/out/_tiles")
