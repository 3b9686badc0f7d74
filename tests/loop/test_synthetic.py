"""Synthetic aerial scenes: deterministic, masks consistent with what is drawn, and a Parquet round trip."""

from __future__ import annotations

import io

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipeline.loop.synthetic import BUILDING, CLASSES, ROAD, VEGETATION, WATER, make_scene, write_dataset


@pytest.fixture(scope="module")
def scenes() -> list[tuple[np.ndarray, np.ndarray]]:
    return [make_scene(seed, 192, 192) for seed in range(6)]


def test_same_seed_same_scene_and_different_seed_different_scene():
    image, mask = make_scene(7, 129, 161)
    again_image, again_mask = make_scene(7, 129, 161)
    other_image, other_mask = make_scene(8, 129, 161)
    np.testing.assert_array_equal(image, again_image)
    np.testing.assert_array_equal(mask, again_mask)
    assert not np.array_equal(image, other_image)
    assert not np.array_equal(mask, other_mask)


@pytest.mark.parametrize("height, width", [(192, 192), (131, 257), (16, 16)])
def test_shapes_dtypes_and_class_range(height, width):
    image, mask = make_scene(3, height, width)
    assert image.shape == (height, width, 3) and image.dtype == np.uint8
    assert mask.shape == (height, width) and mask.dtype == np.uint8
    assert mask.max() < len(CLASSES)


def test_every_class_appears_in_every_scene(scenes):
    for _, mask in scenes:
        assert set(np.unique(mask)) == set(range(len(CLASSES)))


def test_classes_are_separable_by_colour_on_average(scenes):
    image = np.concatenate([i.reshape(-1, 3) for i, _ in scenes]).astype(np.float64)
    mask = np.concatenate([m.ravel() for _, m in scenes])
    mean = {c: image[mask == c].mean(axis=0) for c in range(len(CLASSES))}
    blueness = {c: m[2] - m[:2].mean() for c, m in mean.items()}
    greenness = {c: m[1] - (m[0] + m[2]) / 2 for c, m in mean.items()}
    assert blueness[WATER] == max(blueness.values())
    assert greenness[VEGETATION] == max(greenness.values())
    road = mean[ROAD]
    assert road.max() - road.min() < 15, "roads are grey"
    distances = [np.linalg.norm(mean[a] - mean[b]) for a in mean for b in mean if a < b]
    assert min(distances) > 15, f"two classes share a mean colour: {mean}"
    assert mean[BUILDING][0] > mean[WATER][0]


def test_write_dataset_round_trip_and_second_call_is_a_no_op(tmp_path):
    root = tmp_path / "scenes"
    record = write_dataset(str(root), 7, seed=5, sizes=(33, 47), rows_per_file=3)
    assert record["count"] == 7 and record["classes"] == list(CLASSES)
    assert [p.rsplit("/", 1)[-1] for p in record["parquet_files"]] == [f"part-{i:05d}.parquet" for i in range(3)]
    assert (root / "_SUCCESS").exists()
    table = pq.read_table(root / "parquet")
    assert table.num_rows == 7
    assert table.schema.field("image").type.names == ["bytes", "path"]
    rows = sorted(table.to_pylist(), key=lambda r: r["image_id"])
    assert [r["image_id"] for r in rows] == [f"scene_{i:05d}" for i in range(7)]
    assert [r["split"] for r in rows] == ["train"] * 4 + ["val"] + ["train"] * 2
    sizes = set()
    for row in rows:
        image = np.asarray(Image.open(io.BytesIO(row["image"]["bytes"])))
        mask = np.asarray(Image.open(io.BytesIO(row["mask"]["bytes"])))
        assert image.shape[:2] == mask.shape and image.ndim == 3 and mask.max() < len(CLASSES)
        assert min(mask.shape) >= 33 and max(mask.shape) <= 47
        sizes.add(mask.shape)
        np.testing.assert_array_equal(np.asarray(Image.open(root / row["image"]["path"])), image)
        np.testing.assert_array_equal(np.asarray(Image.open(root / row["mask"]["path"])), mask)
        assert Image.open(root / row["mask"]["path"]).mode == "L"
    assert len(sizes) > 1, "scene sizes vary"

    before = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    assert write_dataset(str(root), 7, seed=5, sizes=(33, 47), rows_per_file=3) == record
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == before


def test_write_dataset_refuses_a_folder_holding_another_dataset(tmp_path):
    write_dataset(str(tmp_path), 2, seed=1, sizes=(32, 32))
    with pytest.raises(ValueError, match="another folder"):
        write_dataset(str(tmp_path), 3, seed=1, sizes=(32, 32))
