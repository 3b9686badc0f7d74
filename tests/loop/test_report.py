"""The run report: a hand-built masks table in, index.html and two PNG files out; no Ray."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from jobs.report import main
from pipeline.io.schema import MASKS_SCHEMA
from pipeline.loop.report import NO_DATA, palette, tile, write_report
from pipeline.loop.scan import locate, parquet_images, scan
from pipeline.stages.postprocess import encode_png

CLASSES = ["background", "water", "forest & field"]
REASON = "not a recognised image format <script>"


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def scene(height: int, width: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A random RGB image and a mask of three bands (classes 0, 1, 2), with a no-data corner."""
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    mask = np.zeros((height, width), np.uint8)
    mask[height // 3 :] = 1
    mask[2 * height // 3 :] = 2
    mask[:4, :4] = NO_DATA
    return image, mask


def ok_row(image_id: str, source: str, mask: np.ndarray) -> dict:
    pixels = np.bincount(mask.ravel(), minlength=len(CLASSES)).tolist()
    row = {"image_id": image_id, "source": source, "status": "ok", "error": None, "height": mask.shape[0]}
    return row | {"width": mask.shape[1], "mask_png": encode_png(mask), "class_pixels": pixels}


def write_masks(root, rows: list[dict]) -> None:
    """Two Parquet files of small row groups, with the class names in the key-value metadata."""
    meta = {b"fcn.class_names": json.dumps(CLASSES).encode(), b"fcn.model": b"fcn_test", b"fcn.run_id": b"run-7"}
    rows = [{"model": "fcn_test", "weights_sha256": None, "run_id": "run-7", **r} for r in rows]
    table = pa.Table.from_pylist(rows, schema=MASKS_SCHEMA.with_metadata(meta))
    (root / "masks").mkdir(parents=True)
    half = len(rows) // 2
    pq.write_table(table.slice(0, half), root / "masks" / "part-0.parquet", row_group_size=1)
    pq.write_table(table.slice(half), root / "masks" / "part-1.parquet", row_group_size=2)


@pytest.fixture
def run(tmp_path):
    """3 ok rows whose sources are PNG files in tmp_path, and 1 error row; returns (output root, masks)."""
    masks = {}
    rows = []
    for i, (height, width) in enumerate([(60, 90), (80, 50), (40, 40)]):
        image, mask = scene(height, width, i)
        (tmp_path / f"img{i}.png").write_bytes(png(image))
        masks[f"id{2 - i}"] = mask  # ids sort the other way round from sources
        rows.append(ok_row(f"id{2 - i}", str(tmp_path / f"img{i}.png"), mask))
    error = {"image_id": "bad", "source": str(tmp_path / "a<b>.png"), "status": "error", "error": REASON}
    rows.insert(1, error | {"height": None, "width": None, "mask_png": None, "class_pixels": None})
    write_masks(tmp_path / "out", rows)
    return tmp_path / "out", masks


def test_report_files_sizes_counts_classes_and_escaped_errors(run):
    root, masks = run
    result = write_report(str(root), images=24, columns=4)
    assert (result["rows"], result["ok"], result["errors"]) == (4, 3, 1)
    report = root / "report"
    sheet, chart = Image.open(report / "contact_sheet.png"), Image.open(report / "class_distribution.png")
    assert sheet.size[0] >= 3 * 256 and 256 < sheet.size[1] < 600, "3 tiles of 256 px in one row, plus captions"
    assert chart.size[0] >= 400 and chart.size[1] >= 150
    page = (report / "index.html").read_text()
    assert "fcn_test" in page and "run-7" in page
    for name in ("background", "water", "forest &amp; field", "no-data"):
        assert name in page
    assert "images</th><td>4<" in page and "ok</th><td>3<" in page and "errors</th><td>1<" in page
    assert "not a recognised image format &lt;script&gt;" in page and "<script>" not in page
    assert "a&lt;b&gt;.png" in page
    total = sum(np.bincount(m.ravel(), minlength=256) for m in masks.values())
    shares = 100 * total / total.sum()
    assert f"{shares[2]:.2f}%" in page and f"{total[1]:,}" in page


def test_scan_sums_class_pixels_and_picks_the_first_sources(run):
    import fsspec

    root, masks = run
    summary = scan(fsspec.filesystem("file"), str(root), images=2)
    expected = sum(np.bincount(m.ravel(), minlength=256) for m in masks.values())
    np.testing.assert_array_equal(summary.pixels, expected)
    assert [s[1] for s in summary.sample] == ["id2", "id1"]  # the contact sheet follows the sources
    assert [s[0] for s in summary.sample] == [str(root.parent / f"img{i}.png") for i in (0, 1)]
    assert summary.errors == [(str(root.parent / "a<b>.png"), REASON)]


def test_missing_source_draws_the_mask_alone(run):
    root, masks = run
    (root.parent / "img0.png").unlink()
    write_report(str(root), str(root.parent / "rep"), images=1)
    assert Image.open(root.parent / "rep" / "contact_sheet.png").size[0] > 256
    image, caption = tile(ok_row("id2", str(root.parent / "img0.png"), masks["id2"]), None, CLASSES)
    assert "source missing" in caption
    assert image.shape == (171, 256, 3)  # 60 x 90 scaled to 256 on the long side
    np.testing.assert_array_equal(image[-1, -1], palette(3)[2])
    np.testing.assert_array_equal(image[0, 0], [0, 0, 0])  # no-data is black when drawn alone


def test_overlay_tints_classes_but_not_background_or_no_data():
    image, mask = scene(64, 64, 0)
    tiled, caption = tile(ok_row("x", "/data/x.png", mask), png(image), CLASSES)
    assert caption == "x.png" and tiled.shape == (256, 256, 3)
    thumb = np.asarray(Image.fromarray(image).resize((256, 256), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(tiled[:16, :16], thumb[:16, :16])  # no-data corner
    np.testing.assert_array_equal(tiled[40, 100:], thumb[40, 100:])  # background row
    water = tiled[128].astype(float)
    expected = thumb[128] * 0.55 + palette(2)[1] * 0.45
    assert np.abs(water - expected).max() <= 1


def test_parquet_sources_are_found_by_row_and_inner_path(tmp_path):
    image, mask = scene(30, 40, 3)
    column = pa.array([{"bytes": b"other", "path": "b.png"}, {"bytes": png(image), "path": "dir/b.png"}])
    pq.write_table(pa.table({"image": column}), tmp_path / "data.parquet")
    rows = [{"source": f"{tmp_path}/data.parquet#row-1/dir/b.png"}, {"source": f"{tmp_path}/data.parquet#row-2/b.png"}]
    plain = pa.table({"image": pa.array([b"first", png(image)], pa.binary())})
    pq.write_table(plain, tmp_path / "plain.parquet", row_group_size=1)  # rows counted over row groups
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    more = [{"source": f"{tmp_path}/plain.parquet#row-1"}, {"source": f"{tmp_path}/broken.parquet#row-0"}]
    found = parquet_images(rows + more, "image", None)
    assert found == {rows[0]["source"]: png(image), more[0]["source"]: png(image)}
    _, caption = tile(ok_row("y", rows[1]["source"], mask), found.get(rows[1]["source"]), CLASSES)
    assert caption.startswith("b.png") and "mask only" in caption


def test_images_root_never_leads_a_source_out_of_it(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "secret.png").write_bytes(png(scene(8, 8, 1)[0]))
    assert locate(str(tmp_path / "root" / "x.png"), str(tmp_path / "root")) is None
    assert locate("a/../../secret.png", str(tmp_path / "root")) is None  # not root/a/../../secret.png


def test_images_root_relocates_sources_and_cli_reports_bad_folders(run, tmp_path, capsys):
    root, _ = run
    moved = tmp_path / "moved" / tmp_path.name
    moved.mkdir(parents=True)
    (tmp_path / "img0.png").rename(moved / "img0.png")
    assert locate(str(tmp_path / "img0.png"), str(tmp_path / "moved"))[1].endswith(f"moved/{tmp_path.name}/img0.png")
    assert locate(str(tmp_path / "img0.png"), None) is None
    cli = str(tmp_path / "cli")
    args = ["--masks", str(root), "--out", cli, "--images", "1", "--images-root", str(tmp_path / "moved")]
    assert main(args) == 0
    assert "4 images, 3 ok, 1 with errors" in capsys.readouterr().out
    assert main(["--masks", str(tmp_path / "nothing")]) == 2
    assert "no Parquet files" in capsys.readouterr().err
