"""``python -m jobs.export --to dicom-seg,hf,coco`` end to end on Ray, each export read back by its own reader."""

from __future__ import annotations

import glob
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from test_dicom_seg import class_mask, enhanced_mr, pydicom_file

from jobs.export import main
from pipeline.bench.exports import commit_masks
from pipeline.exports.georef import file_stem
from pipeline.exports.labels import dicom_skip
from pipeline.stages.postprocess import encode_png

NAMES = ("background", "soft", "bright")
DICOM = {"ct": "CT_small.dcm", "mr": "MR_small.dcm", "gone": "CT_small.dcm"}

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom and highdicom on old test files


def label_table(tmp_path) -> tuple[str, dict[str, np.ndarray], dict[str, tuple[str, int | None]]]:
    """A masks table of DICOM rows (single-frame, two frames of an enhanced MR, one whose file is deleted),
    a PNG photo and a PNG without a suffix; returns the output, the masks and (source, frame) by id."""
    files = {name: pydicom_file(test_file) for name, test_file in DICOM.items()}
    files["enh"] = enhanced_mr()
    rows = {i: (f"{i}.dcm", None) for i in DICOM} | {"enh#0": ("enh.dcm", 0), "enh#2": ("enh.dcm", 2)}
    masks = {i: class_mask(files[name.removesuffix(".dcm")], frame) for i, (name, frame) in rows.items()}
    rng = np.random.default_rng(3)
    for image_id, name in (("photo", "photo.png"), ("noext", "scan")):  # not DICOM: by name, by its bytes
        masks[image_id] = rng.integers(0, 3, size=(24, 32), dtype=np.uint8)
        files[name] = encode_png(masks[image_id])
        rows[image_id] = (name, None)
    for name, data in files.items():
        (tmp_path / (name if name in ("photo.png", "scan") else f"{name}.dcm")).write_bytes(data)
    rows = {i: (str(tmp_path / name), frame) for i, (name, frame) in rows.items()}
    out = str(tmp_path / "out")
    sources = {i: s for i, (s, _) in rows.items()}
    frames = {i: f for i, (_, f) in rows.items() if f is not None}
    commit_masks(out, masks, dict.fromkeys(masks, (None, None)), NAMES, sources=sources, frames=frames)
    (tmp_path / "gone.dcm").unlink()  # a source deleted between the segment run and the export
    return out, masks, rows


def test_export_dicom_seg_hf_and_coco_read_back_by_their_own_readers(ray_local, tmp_path, capsys, monkeypatch):
    import datasets
    import highdicom as hd
    import pydicom
    from pycocotools import mask as rle
    from pycocotools.coco import COCO

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    out, masks, rows = label_table(tmp_path)
    assert main(["--masks", out, "--to", "dicom-seg,hf,coco", "--batch-size", "3"]) == 1  # the deleted source
    printed = capsys.readouterr()
    assert "export dicom-seg: 4 exported, 0 already, 2 skipped (not DICOM), 1 errors" in printed.out
    assert "export hf: 7 exported, 0 already, 0 errors" in printed.out
    assert "error dicom-seg gone: the DICOM source" in printed.err and "is gone" in printed.err
    record = json.loads((tmp_path / "out/exports/_manifest.json").read_text())["latest"]
    assert [(e["image_id"], e["format"]) for e in record["errors"]] == [("gone", "dicom-seg")]

    for image_id in ("ct", "mr", "enh#0", "enh#2"):
        source, frame = rows[image_id]
        original = pydicom.dcmread(source, stop_before_pixels=True)
        seg = hd.seg.segread(f"{out}/exports/dicom-seg/{file_stem(image_id)}.dcm")
        uids = (original.StudyInstanceUID, original.SeriesInstanceUID, original.SOPInstanceUID)
        assert seg.get_source_image_uids() == [uids]
        if frame is None:
            pixels = seg.get_pixels_by_source_instance([original.SOPInstanceUID], combine_segments=True)
        else:
            pixels = seg.get_pixels_by_source_frame(original.SOPInstanceUID, [frame + 1], combine_segments=True)
        present = [c for c in range(len(NAMES)) if (masks[image_id] == c).any()]
        np.testing.assert_array_equal(np.array([255, *present])[pixels[0]], masks[image_id])
    assert len(glob.glob(f"{out}/exports/dicom-seg/*.dcm")) == 4

    parts = sorted(glob.glob(f"{out}/exports/hf/*.parquet"))
    loaded = datasets.load_dataset("parquet", data_files=parts, split="train", cache_dir=str(tmp_path / "cache"))
    assert sorted(loaded["image_id"]) == sorted(masks)
    for record_ in loaded:
        np.testing.assert_array_equal(np.asarray(record_["mask"]), masks[record_["image_id"]])

    coco = COCO(f"{out}/{record['coco_json']}")
    assert sorted(i["fcn_image_id"] for i in coco.imgs.values()) == sorted(masks)
    for annotation in coco.anns.values():
        mask = masks[coco.imgs[annotation["image_id"]]["fcn_image_id"]]
        np.testing.assert_array_equal(coco.annToMask(annotation), mask == annotation["category_id"] - 1)
    table = pq.read_table(f"{out}/exports/coco")  # the JSON file is no obstacle to reading the folder
    assert table.num_rows == len(coco.anns) == sum(len(set(np.unique(m)) - {255}) for m in masks.values())
    for row in table.to_pylist():
        decoded = rle.decode({"size": row["size"], "counts": row["counts"].encode()})
        np.testing.assert_array_equal(decoded, masks[row["image_id"]] == row["class_id"])

    # a rerun: nothing new (the source-less row fails again, the suffix-less PNG is read and skipped again)
    assert main(["--masks", out, "--to", "dicom-seg,hf,coco"]) == 1
    again = capsys.readouterr().out
    assert "export dicom-seg: 0 exported, 4 already, 2 skipped (not DICOM)" in again
    assert "export hf: 0 exported, 7 already" in again and "export coco: 0 exported, 0 annotations, 7 already" in again
    assert len(glob.glob(f"{out}/exports/hf/*.parquet")) == len(parts)


@pytest.mark.parametrize(
    ("source", "why"),
    [("s3://b/series/IM0001", None), ("/d/x.DCM", None), ("/d/1.2.840.113619.2.55.3", None),
     ("https://h/x.dcm?sig=1", None), ("/d/x.png", "skipped_not_dicom"), ("/d/x.tif", "skipped_not_dicom"),
     ("s3://b/shard.parquet#row-3/x.dcm", "skipped_in_parquet")],
)  # fmt: skip
def test_the_plan_skips_sources_named_as_no_dicom_file_without_reading_them(source, why):
    assert dicom_skip(source) == why
