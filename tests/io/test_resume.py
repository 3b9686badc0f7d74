"""Every input exactly once across reruns: the granularity resume commits at, inputs that change under
a run, and outputs that sit inside the input folder. Real local Ray, output read back with DuckDB."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from imagefiles import CLASSES, bad_images, encode, good_images, rgb, write_tree
from outputs import check_contract, read_tables
from PIL import Image
from pydicom.data import get_testdata_file
from runs import job

import pipeline.io.sources as sources
from jobs.segment import main


def counts(out: Path) -> dict:
    return json.loads((out / "_manifest.json").read_text())["runs"][-1]["counts"]


def test_multi_frame_dicom_is_not_duplicated_by_a_resume(tmp_path, ray_local, weights):
    (tmp_path / "in").mkdir()
    shutil.copy(get_testdata_file("rtdose.dcm"), tmp_path / "in" / "dose.dcm")  # 15 frames
    Image.fromarray(rgb(20, 30, 1)).save(tmp_path / "in" / "one.png")
    for _ in range(2):
        assert job(tmp_path / "in", tmp_path / "out", weights) == 0
    masks, stats = read_tables(str(tmp_path / "out"))
    check_contract(masks, stats, CLASSES)
    assert masks.num_rows == 16
    manifest = json.loads((tmp_path / "out" / "_manifest.json").read_text())
    assert manifest["counts"]["rows"] == 0  # this run's own work: nothing new
    assert manifest["totals"] == {"inputs": 16, "ok": 16, "errors": 0}  # the table as committed


def test_several_blocks_per_write_with_an_error_among_them(tmp_path, ray_local, weights):
    """One decode batch per image: the write task gets blocks whose error column is all null and one
    whose is not (Arrow typed them null and string, and the write used to fail)."""
    good, bad = good_images(), bad_images()
    write_tree(tmp_path / "in", {k: v[0] for k, v in {**good, **bad}.items()})
    assert job(tmp_path / "in", tmp_path / "out", weights, "--decode-batch-size", "1") == 0
    masks, stats = read_tables(str(tmp_path / "out"))
    rows = check_contract(masks, stats, CLASSES)
    assert len(rows) == len(good) + len(bad) and counts(tmp_path / "out")["errors"] == len(bad)
    assert len(list((tmp_path / "out" / "masks").iterdir())) == 1  # all of them in one write


def test_a_file_removed_after_listing_is_an_error_row(tmp_path, ray_local, weights, monkeypatch):
    (tmp_path / "in").mkdir()
    for i in range(3):
        Image.fromarray(rgb(24, 28, i)).save(tmp_path / "in" / f"{i}.png")
    listed = sources.list_images

    def list_then_remove(fs, path, outputs=()):
        paths = listed(fs, path, outputs)
        Path(paths["path"][1].as_py()).unlink()  # gone between the listing and the read
        return paths

    monkeypatch.setattr(sources, "list_images", list_then_remove)
    assert job(tmp_path / "in", tmp_path / "out", weights) == 0
    rows = check_contract(*read_tables(str(tmp_path / "out")), CLASSES)
    gone = rows[str(tmp_path / "in" / "1.png")]
    assert gone["status"] == "error" and "removed after listing" in gone["error"]
    assert [rows[str(tmp_path / "in" / f"{i}.png")]["status"] for i in (0, 2)] == ["ok", "ok"]


def test_an_output_inside_the_input_folder_is_not_read_back(tmp_path, ray_local, weights, caplog):
    (tmp_path / "in").mkdir()
    for i in range(2):
        Image.fromarray(rgb(24, 28, i)).save(tmp_path / "in" / f"{i}.png")
    out = tmp_path / "in" / "out"
    assert job(tmp_path / "in", out, weights) == 0
    Image.fromarray(rgb(30, 30, 5)).save(out / "report.png")  # what a report leaves beside the tables
    (out / "exports").mkdir()
    Image.fromarray(rgb(30, 30, 6)).save(out / "exports" / "mask.png")
    elsewhere = tmp_path / "in" / "old-run"  # an earlier run's output, named by its manifest
    elsewhere.mkdir()
    (elsewhere / "_manifest.json").write_text("{}")
    Image.fromarray(rgb(30, 30, 7)).save(elsewhere / "contact_sheet.png")
    assert job(tmp_path / "in", out, weights) == 0
    masks, _ = read_tables(str(out))
    assert sorted(masks["source"].to_pylist()) == [str(tmp_path / "in" / f"{i}.png") for i in range(2)]
    assert f"left out 2 files under {out}" in caplog.text and f"1 files under {elsewhere}" in caplog.text


def test_a_resume_with_another_model_weights_or_classes_is_refused(tmp_path, ray_local, weights, capsys):
    (tmp_path / "in").mkdir()
    Image.fromarray(rgb(24, 28, 0)).save(tmp_path / "in" / "0.png")
    assert job(tmp_path / "in", tmp_path / "out", weights) == 0
    capsys.readouterr()
    other = ["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--actors-max", "1"]
    assert main([*other, "--weights", weights, "--classes", "a,b,c"]) == 2
    assert "holds masks of model fcn8s_mobilenet_v3" in capsys.readouterr().err
    assert main([*other, "--weights", "random"]) == 2
    said = capsys.readouterr().err
    assert "weights_sha256 (random)" in said and "--mode overwrite" in said
    assert len(json.loads((tmp_path / "out" / "_manifest.json").read_text())["runs"]) == 1  # nothing written
    assert main([*other, "--weights", "random", "--mode", "overwrite"]) == 0


def test_parquet_rows_that_repeat_their_path_each_keep_their_own_id(tmp_path, ray_local, weights):
    """A Hugging Face ``{bytes, path}`` column with ``image.png`` in every row, over two row groups."""
    blobs = [encode(Image.fromarray(rgb(20 + i, 24, i)), "PNG") for i in range(5)]
    column = pa.array([{"bytes": b, "path": "image.png"} for b in blobs])
    (tmp_path / "pq").mkdir()
    pq.write_table(pa.table({"image": column}), tmp_path / "pq" / "shard.parquet", row_group_size=3)
    for _ in range(2):
        assert job(tmp_path / "pq", tmp_path / "out", weights) == 0
    masks, stats = read_tables(str(tmp_path / "out"))
    rows = check_contract(masks, stats, CLASSES)
    assert sorted(rows) == [f"{tmp_path}/pq/shard.parquet#row-{i}/image.png" for i in range(5)]
    assert [rows[f"{tmp_path}/pq/shard.parquet#row-{i}/image.png"]["height"] for i in range(5)] == [20, 21, 22, 23, 24]
    assert counts(tmp_path / "out")["rows"] == 0  # the rerun found every row committed


def test_retry_errors_redoes_failed_inputs_and_the_newer_row_is_the_only_one(tmp_path, ray_local, weights):
    (tmp_path / "in").mkdir()
    for i in range(3):
        Image.fromarray(rgb(24, 28, i)).save(tmp_path / "in" / f"{i}.png")
    Image.fromarray(rgb(40, 50, 9)).save(tmp_path / "in" / "large.png")
    assert job(tmp_path / "in", tmp_path / "out", weights, "--max-pixels", "1000") == 0  # over a limit: an error
    assert job(tmp_path / "in", tmp_path / "out", weights) == 0  # a plain resume keeps error rows
    large = str(tmp_path / "in" / "large.png")
    assert check_contract(*read_tables(str(tmp_path / "out")), CLASSES)[large]["status"] == "error"

    assert job(tmp_path / "in", tmp_path / "out", weights, "--retry-errors") == 0
    masks, stats = read_tables(str(tmp_path / "out"))
    rows = check_contract(masks, stats, CLASSES)  # one row per image_id, stats agree with masks
    assert masks.num_rows == 4 and rows[large]["status"] == "ok" and rows[large]["height"] == 40
    assert all(rows[str(tmp_path / "in" / f"{i}.png")]["status"] == "ok" for i in range(3))
    assert counts(tmp_path / "out")["retried"] == 1 and counts(tmp_path / "out")["rows"] == 1
    assert job(tmp_path / "in", tmp_path / "out", weights, "--retry-errors") == 0
    assert counts(tmp_path / "out")["retried"] == 0 and read_tables(str(tmp_path / "out"))[0].num_rows == 4


def test_a_file_replaced_at_its_path_is_done_again(tmp_path, ray_local, weights):
    (tmp_path / "in").mkdir()
    Image.fromarray(rgb(60, 50, 0)).save(tmp_path / "in" / "photo.png")
    Image.fromarray(rgb(20, 30, 1)).save(tmp_path / "in" / "same.png")
    assert job(tmp_path / "in", tmp_path / "out", weights) == 0
    Image.fromarray(rgb(20, 20, 2)).save(tmp_path / "in" / "photo.png")  # overwritten by a nightly export
    assert job(tmp_path / "in", tmp_path / "out", weights) == 0
    masks, stats = read_tables(str(tmp_path / "out"))
    rows = check_contract(masks, stats, CLASSES)
    photo = rows[str(tmp_path / "in" / "photo.png")]
    assert masks.num_rows == 2 and (photo["height"], photo["width"]) == (20, 20)
    assert photo["source_version"].startswith("size=") and counts(tmp_path / "out")["rows"] == 1  # same.png kept
