"""``python -m jobs.export`` end to end on Ray: each georeferenced mask once, errors listed, reruns incremental."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_formats import NAMES, UTM, WGS84, scene_mask

from jobs.export import main
from pipeline.bench.exports import commit_masks
from pipeline.exports.georef import file_stem
from pipeline.io import lease

ROWS = {  # image id -> (crs, geotransform, status)
    "utm-a": (*UTM, "ok"),
    "utm-b#1": (UTM[0], [500_300.0, 0.5, 0.0, 5_000_000.0, 0.0, -0.5], "ok"),
    "wgs": (*WGS84, "ok"),
    "plain": (None, None, "ok"),
    "badcrs": ("EPSG:99999999", UTM[1], "ok"),
    "failed": (None, None, "error"),
}


def masks_table(root: str) -> dict[str, np.ndarray]:
    """A committed masks table (the sink's own commit) of ``ROWS``; returns the masks by image id."""
    masks = {image_id: scene_mask(120 + 10 * k, 160, seed=k) for k, image_id in enumerate(ROWS)}
    georefs = {image_id: (crs, transform) for image_id, (crs, transform, _) in ROWS.items()}
    failed = frozenset(i for i, (*_, status) in ROWS.items() if status != "ok")
    commit_masks(root, masks, georefs, tuple(NAMES), failed)
    return masks


def test_export_writes_each_georeferenced_mask_once_lists_errors_and_reruns_incrementally(ray_local, tmp_path, capsys):
    import geopandas
    import pystac
    import rasterio
    from rasterio.features import rasterize

    out = tmp_path / "out"
    masks = masks_table(str(out))
    assert main(["--masks", str(out), "--to", "all", "--batch-size", "2"]) == 1  # one row's CRS is broken
    printed = capsys.readouterr()
    assert "export cog: 3 exported, 0 already, 1 skipped (no CRS), 1 errors" in printed.out
    assert "error cog badcrs: crs 'EPSG:99999999' is not a CRS pyproj knows" in printed.err
    record = json.loads((out / "exports/_manifest.json").read_text())["latest"]
    assert record["segmentation_errors"] == 1 and {e["image_id"] for e in record["errors"]} == {"badcrs"}

    for image_id in ("utm-a", "utm-b#1", "wgs"):
        with rasterio.open(out / f"exports/cog/{file_stem(image_id)}.tif") as src:
            np.testing.assert_array_equal(src.read(1), masks[image_id])
            assert src.crs.to_epsg() == (4326 if image_id == "wgs" else 32633)
    assert sorted(p.name for p in (out / "exports/cog").iterdir()) == sorted(
        f"{file_stem(i)}.tif" for i in ("utm-a", "utm-b#1", "wgs")
    )
    for folder, ids in (("epsg-32633", ["utm-a", "utm-b#1"]), ("epsg-4326", ["wgs"])):
        frame = geopandas.read_parquet(out / "exports/geoparquet" / folder)
        assert frame.crs.to_string() == f"EPSG:{folder.split('-')[1]}" and sorted(frame.image_id.unique()) == ids
        for image_id in ids:
            rows = frame[frame.image_id == image_id]
            geo = rasterio.open(out / f"exports/cog/{file_stem(image_id)}.tif").transform
            shapes = zip(rows.geometry, rows.class_id, strict=True)
            back = rasterize(shapes, out_shape=masks[image_id].shape, transform=geo, fill=255)
            np.testing.assert_array_equal(back, masks[image_id])
        assert set(frame.mean_confidence) == {0.5}
    collection = pystac.read_file(out / "exports/stac/collection.json")
    items = sorted(collection.get_items(), key=lambda i: i.id)
    assert [i.id for i in items] == ["utm-a", "utm-b#1", "wgs"]
    assert all(rasterio.open(i.assets["mask"].get_absolute_href()).count == 1 for i in items)

    # a rerun exports nothing again (the broken row is tried again and fails again)
    assert main(["--masks", str(out), "--to", "all"]) == 1
    again = capsys.readouterr().out
    assert "export geoparquet: 0 exported, 0 polygons, 3 already, 1 skipped (no CRS), 1 errors" in again
    assert len(list((out / "exports/geoparquet").rglob("*.parquet"))) == 2

    # a killed export: a staged leftover, a COG whose STAC item was never written, an item the collection lacks
    (out / "exports/_staging/dead").mkdir(parents=True)
    (out / "exports/_staging/dead/x.tif").write_bytes(b"partial")
    (out / f"exports/stac/items/{file_stem('wgs')}.json").unlink()
    links = json.loads((out / "exports/stac/collection.json").read_text())
    links["links"] = [link for link in links["links"] if "utm-a" not in link["href"]]
    (out / "exports/stac/collection.json").write_text(json.dumps(links))
    assert main(["--masks", str(out), "--to", "stac"]) == 1
    assert "export stac: 1 exported, 2 already" in capsys.readouterr().out
    assert not list((out / "exports/_staging").iterdir())
    assert sorted(i.id for i in pystac.read_file(out / "exports/stac/collection.json").get_items()) == [
        "utm-a", "utm-b#1", "wgs"
    ]  # fmt: skip


def test_an_export_while_another_holds_the_exports_folder_is_refused(tmp_path, capsys):
    import fsspec

    out = tmp_path / "out"
    masks_table(str(out))
    with lease.hold(fsspec.filesystem("file"), str(out / "exports"), "export-other", 60):
        assert main(["--masks", str(out), "--to", "cog"]) == 2
    assert "is in use by run export-other" in capsys.readouterr().err
    assert not (out / "exports/cog").exists()


def test_bad_arguments_are_refused_before_anything_runs(tmp_path, capsys):
    assert main(["--masks", str(tmp_path), "--to", "shapefile"]) == 2
    assert "--to: unknown export format shapefile" in capsys.readouterr().err
    assert main(["--masks", str(tmp_path), "--to", "cog"]) == 2
    assert "no masks table" in capsys.readouterr().err


@pytest.mark.parametrize("crs", ["EPSG:32633"])
def test_segment_with_export_of_real_geotiffs_into_s3(ray_local, tmp_path, s3_bucket, weights, crs):
    """GeoTIFF scenes -> jobs.segment --export cog,geoparquet into an S3 output on moto."""
    import geopandas
    import rasterio
    import s3fs
    from runs import job

    from pipeline.loop.synthetic import write_dataset

    scenes = write_dataset(str(tmp_path / "scenes"), 3, seed=5, sizes=(96, 128), crs=crs)
    out = f"s3://{s3_bucket}/out"
    assert job(scenes["images"], out, str(weights), "--export", "cog,geoparquet") == 0
    fs = s3fs.S3FileSystem()
    cogs = fs.ls(f"{s3_bucket}/out/exports/cog")
    assert len(cogs) == 3
    with rasterio.MemoryFile(fs.cat_file(cogs[0])) as memory, memory.open() as src:
        assert src.crs.to_string() == crs and src.transform.a == 0.5
    parts = fs.glob(f"{s3_bucket}/out/exports/geoparquet/epsg-32633/*.parquet")
    frame = geopandas.read_parquet(f"s3://{parts[0]}", filesystem=fs)
    assert frame.crs.to_string() == crs and frame.image_id.nunique() == 3
