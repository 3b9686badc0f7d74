"""COCO RLE annotations, decoded back by pycocotools: from the Parquet table and through ``COCO(path)``."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.exports.coco import COCO_SCHEMA, annotations, coco_document, coco_table

NAMES = ["background", "water", "vegetation", "building"]


def masks() -> dict[str, np.ndarray]:
    """A known rectangle of class 3 (class 2 absent); one class only; a no-data corner; a 16-bit mask."""
    rect = np.zeros((20, 30), np.uint8)
    rect[4:9, 11:18] = 3  # rows 4..8, cols 11..17: bbox [11, 4, 7, 5], 35 pixels
    rect[15:, :] = 1
    nodata = np.random.default_rng(0).integers(0, 4, size=(13, 17), dtype=np.uint8)
    nodata[:4, :6] = 255
    wide = np.random.default_rng(1).integers(250, 300, size=(6, 7)).astype(np.uint16)  # above 256 classes
    return {"rect": rect, "one#1": np.full((7, 5), 2, np.uint8), "nodata": nodata, "wide": wide}


@pytest.fixture(scope="module")
def rows() -> dict[str, list[dict]]:
    return {image_id: annotations(image_id, mask, NAMES) for image_id, mask in masks().items()}


def present(mask: np.ndarray) -> list[int]:
    return sorted(int(c) for c in np.unique(mask) if c != 255)


def test_one_annotation_per_class_present_with_exact_area_and_bbox(rows):
    for image_id, mask in masks().items():
        assert [a["class_id"] for a in rows[image_id]] == present(mask)
        for a in rows[image_id]:
            assert a["area"] == int((mask == a["class_id"]).sum())
            name = NAMES[a["class_id"]] if a["class_id"] < len(NAMES) else f"class_{a['class_id']}"
            assert a["class_name"] == name and a["size"] == list(mask.shape)
    rect = {a["class_id"]: a for a in rows["rect"]}
    assert 2 not in rect and 255 not in {a["class_id"] for a in rows["nodata"]}
    assert rect[3]["bbox"] == [11.0, 4.0, 7.0, 5.0] and rect[3]["area"] == 35
    assert rect[1]["bbox"] == [0.0, 15.0, 30.0, 5.0]
    assert [a["bbox"] for a in rows["one#1"]] == [[0.0, 0.0, 5.0, 7.0]]


def test_rles_in_the_parquet_table_decode_to_each_class_mask(rows, tmp_path):
    from pycocotools import mask as rle

    path = tmp_path / "coco.parquet"
    pq.write_table(coco_table([a for r in rows.values() for a in r], {b"fcn.model": b"m"}), path)
    table = pq.read_table(path)
    assert table.schema.remove_metadata() == COCO_SCHEMA and table.schema.metadata[b"fcn.model"] == b"m"
    found = masks()
    for row in table.to_pylist():
        decoded = rle.decode({"size": row["size"], "counts": row["counts"].encode()})
        assert np.array_equal(decoded, found[row["image_id"]] == row["class_id"]), (row["image_id"], row["class_id"])


def test_coco_json_loads_in_pycocotools_and_ann_to_mask_rebuilds_every_class(rows, tmp_path):
    from pycocotools.coco import COCO

    found = masks()
    images = [{"image_id": i, "source": f"s3://bucket/scans/{i}.png", "height": m.shape[0], "width": m.shape[1]}
              for i, m in found.items()]  # fmt: skip
    document = coco_document(images, [a for r in rows.values() for a in r], NAMES, info={"run_id": "r1"})
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(document))
    coco = COCO(str(path))

    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == NAMES
    assert coco.getCatIds() == [1, 2, 3, 4]  # class id + 1
    assert document["info"]["run_id"] == "r1"
    for image in coco.loadImgs(coco.getImgIds()):
        mask = found[image["fcn_image_id"]]
        assert (image["height"], image["width"]) == mask.shape
        assert image["file_name"] == f"{image['fcn_image_id']}.png"
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]]))
        assert sorted(a["category_id"] - 1 for a in anns) == present(mask)
        for ann in anns:
            expected = mask == ann["category_id"] - 1
            assert np.array_equal(coco.annToMask(ann), expected)
            assert ann["area"] == expected.sum() and ann["iscrowd"] == 1


def test_all_no_data_gives_no_annotation_and_unknown_images_are_refused():
    assert annotations("x", np.full((3, 3), 255, np.uint8), NAMES) == []
    with pytest.raises(ValueError, match="not in the document: ghost"):
        coco_document([], [{"image_id": "ghost", "class_id": 0}], NAMES)
