"""The Hugging Face export, read back by ``datasets.load_dataset("parquet", ...)`` itself."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.exports.georef import file_stem
from pipeline.exports.hf import HF_FEATURES, HF_SCHEMA, hf_table
from pipeline.stages.postprocess import encode_png

NAMES = ["background", "water", "vegetation", "building"]


def masks() -> dict[str, np.ndarray]:
    """All class 0; class 2 absent; a no-data corner; a 16-bit mask (above 256 classes)."""
    rng = np.random.default_rng(0)
    no_two = rng.choice([0, 1, 3], size=(24, 40)).astype(np.uint8)
    nodata = rng.integers(0, 4, size=(17, 9), dtype=np.uint8)
    nodata[:5, :4] = 255
    wide = rng.integers(0, 300, size=(8, 12)).astype(np.uint16)
    return {"zeros": np.zeros((16, 16), np.uint8), "no-2": no_two, "a#3": nodata, "wide": wide}


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    """No hub, and no cache outside tmp_path (datasets reads these when first imported)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))


def test_load_dataset_decodes_every_mask_as_an_image_and_keeps_the_class_names(tmp_path):
    import datasets

    found = masks()
    rows = [
        {"image_id": i, "source": f"s3://b/{i}.dcm", "mask_png": encode_png(m), "stem": file_stem(i)}
        for i, m in found.items()
    ]
    path = tmp_path / "masks.parquet"
    pq.write_table(hf_table(rows, NAMES, {b"fcn.model": b"fcn_resnet50"}), path)

    ds = datasets.load_dataset("parquet", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache"))
    assert isinstance(ds.features["mask"], datasets.Image)
    assert ds.features["image_id"] == datasets.Value("string")
    assert ds["image_id"] == list(found)
    for record in ds:
        expected = found[record["image_id"]]
        decoded = np.asarray(record["mask"])
        assert decoded.dtype == expected.dtype and np.array_equal(decoded, expected), record["image_id"]
    # the file name a tool would save the image under is the stem's, never the raw id
    assert ds.cast_column("mask", datasets.Image(decode=False))[2]["mask"]["path"] == f"{file_stem('a#3')}.png"

    schema = pq.read_schema(path)
    assert json.loads(schema.metadata[b"fcn.class_names"]) == NAMES
    assert schema.metadata[b"fcn.model"] == b"fcn_resnet50"
    hf = json.loads(schema.metadata[b"huggingface"])
    assert "1=water" in hf["info"]["description"] and "255 = no-data" in hf["info"]["description"]


def test_features_are_what_datasets_writes():
    import datasets

    features = datasets.Features(
        {"image_id": datasets.Value("string"), "source": datasets.Value("string"), "mask": datasets.Image()}
    )
    assert features.to_dict() == HF_FEATURES
    assert list(HF_FEATURES) == list(features.to_dict())
    assert features.arrow_schema.remove_metadata() == HF_SCHEMA
