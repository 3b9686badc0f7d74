"""The segmentation job end to end on a real local Ray cluster, read back with DuckDB and pyarrow."""

from __future__ import annotations

import io
import json

import boto3
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from imagefiles import CLASSES, bad_images, good_images, rgb, write_tree
from outputs import check_contract, read_tables
from PIL import Image
from runs import job

from jobs.segment import main
from pipeline.loop.report import write_report


@pytest.mark.parametrize("jpeg_decode", ["tasks", "actor"])
def test_local_folder_with_corrupt_files(tmp_path, ray_local, weights, jpeg_decode):
    good, bad = good_images(), bad_images()
    write_tree(tmp_path / "in", {k: v[0] for k, v in {**good, **bad}.items()})
    (tmp_path / "in" / "notes.txt").write_text("not an image extension: skipped")
    assert job(tmp_path / "in", tmp_path / "out", weights, "--jpeg-decode", jpeg_decode) == 0

    masks, stats = read_tables(str(tmp_path / "out"))
    rows = check_contract(masks, stats, CLASSES)
    assert len(rows) == len(good) + len(bad)
    for name, (_, size) in good.items():
        row = rows[str(tmp_path / "in" / name)]
        assert row["status"] == "ok" and (row["height"], row["width"]) == size
    for name, (_, reason) in bad.items():
        row = rows[str(tmp_path / "in" / name)]
        assert row["status"] == "error" and reason in row["error"]
    assert len({c for r in rows.values() if r["class_pixels"] for c, n in enumerate(r["class_pixels"]) if n}) > 1
    manifest = json.loads((tmp_path / "out" / "_manifest.json").read_text())
    assert manifest["complete"] and manifest["class_names"] == list(CLASSES)
    assert manifest["counts"] == {"rows": 13, "ok": 10, "errors": 3, "already_committed": 0, "retried": 0}
    assert manifest["totals"] == {"inputs": 13, "ok": 10, "errors": 3}
    assert not list((tmp_path / "out" / "_staging").iterdir())


def test_rerun_labels_only_new_images(tmp_path, ray_local, weights):
    (tmp_path / "in").mkdir()
    for i in range(3):
        Image.fromarray(rgb(32, 40, i)).save(tmp_path / "in" / f"{i}.png")
    assert job(tmp_path / "in", tmp_path / "out", weights) == 0
    first_ids = set(read_tables(str(tmp_path / "out"))[0]["image_id"].to_pylist())
    Image.fromarray(rgb(32, 40, 9)).save(tmp_path / "in" / "new.png")
    assert job(tmp_path / "in", tmp_path / "out", weights) == 0
    masks, stats = read_tables(str(tmp_path / "out"))
    check_contract(masks, stats, CLASSES)
    assert masks.num_rows == 4 and first_ids < set(masks["image_id"].to_pylist())
    runs = json.loads((tmp_path / "out" / "_manifest.json").read_text())["runs"]
    assert [r["counts"]["rows"] for r in runs] == [3, 1]
    assert job(tmp_path / "in", tmp_path / "out", weights, "--mode", "error") == 2


def test_a_rerun_with_nothing_new_starts_no_pool_and_says_so(tmp_path, ray_local, weights, capsys):
    (tmp_path / "in").mkdir()
    Image.fromarray(rgb(32, 40, 0)).save(tmp_path / "in" / "0.png")
    assert job(tmp_path / "in", tmp_path / "out", weights) == 0
    assert job(tmp_path / "in", tmp_path / "out", weights) == 0
    assert "nothing new: every listed input is committed already" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "out" / "_manifest.json").read_text())
    assert [r["pool_started"] for r in manifest["runs"]] == [True, False]
    assert manifest["complete"] and manifest["totals"] == {"inputs": 1, "ok": 1, "errors": 0}


def test_random_weights_are_called_meaningless_in_the_log_summary_manifest_and_report(tmp_path, ray_local, capsys):
    (tmp_path / "in").mkdir()
    Image.fromarray(rgb(32, 40, 0)).save(tmp_path / "in" / "0.png")
    assert job(tmp_path / "in", tmp_path / "out", "random") == 0
    said = capsys.readouterr()
    assert "warning: --weights random: the model is untrained" in said.err
    assert "(random weights: the masks mean nothing)" in said.out
    manifest = json.loads((tmp_path / "out" / "_manifest.json").read_text())
    assert manifest["random_weights"] and "every mask is meaningless" in manifest["warnings"][0]
    write_report(str(tmp_path / "out"))
    assert (
        "<p class=banner>--weights random: the model is untrained"
        in (tmp_path / "out" / "report" / "index.html").read_text()
    )


def test_a_misspelt_weights_name_is_refused_naming_the_closest(tmp_path, capsys):
    argv = ["--input", str(tmp_path), "--output", str(tmp_path / "out"), "--weights", "fcn_resnet50_cooc"]
    assert main(argv) == 2
    assert "did you mean 'fcn_resnet50_coco'?" in capsys.readouterr().err
    assert main(argv[:4]) == 2
    assert "fcn8s_mobilenet_v3_scenes" in capsys.readouterr().err  # no --weights: the registered names


def test_parquet_with_struct_column_and_ids(tmp_path, ray_local, weights):
    images = [Image.fromarray(rgb(40 + i, 50 + 2 * i, i)) for i in range(5)]
    blobs = [io.BytesIO() for _ in images]
    for image, blob in zip(images, blobs, strict=True):
        image.save(blob, format="PNG")
    column = pa.array(
        [{"bytes": b.getvalue(), "path": f"img{i}.png"} for i, b in enumerate(blobs)]
        + [{"bytes": b"broken", "path": "broken.png"}]
    )
    (tmp_path / "pq").mkdir()
    pq.write_table(pa.table({"image": column, "key": [f"k{i}" for i in range(6)]}), tmp_path / "pq" / "a.parquet")
    assert job(tmp_path / "pq", tmp_path / "out", weights, "--id-column", "key") == 0
    masks, stats = read_tables(str(tmp_path / "out"))
    check_contract(masks, stats, CLASSES)
    by_id = {r["image_id"]: r for r in masks.to_pylist()}
    assert set(by_id) == {f"k{i}" for i in range(6)}
    assert (by_id["k3"]["height"], by_id["k3"]["width"]) == (43, 56)
    assert by_id["k5"]["status"] == "error" and by_id["k5"]["source"].endswith("a.parquet#row-5/broken.png")


def test_s3_in_and_out_with_a_mixed_uri_list(tmp_path, s3_bucket, s3_endpoint, ray_local, weights):
    s3 = boto3.client("s3")
    for name, (data, _) in list(good_images().items())[:4]:
        s3.put_object(Bucket=s3_bucket, Key=f"images/{name}", Body=data)
    s3.put_object(Bucket=s3_bucket, Key="images/zero.jpg", Body=b"")
    assert job(f"s3://{s3_bucket}/images/", f"s3://{s3_bucket}/out", weights) == 0

    fs = pafs.S3FileSystem(endpoint_override=s3_endpoint, access_key="testing", secret_key="testing-secret-value")
    masks, stats = read_tables(f"{s3_bucket}/out", filesystem=fs)
    rows = check_contract(masks, stats, CLASSES)
    assert sorted(rows) == sorted(f"s3://{s3_bucket}/images/{n}" for n in [*list(good_images())[:4], "zero.jpg"])
    manifest = json.loads(s3.get_object(Bucket=s3_bucket, Key="out/_manifest.json")["Body"].read())
    assert manifest["counts"]["ok"] == 4
    assert "testing-secret-value" not in json.dumps(manifest)

    local = tmp_path / "local.png"
    Image.fromarray(rgb(20, 30, 3)).save(local)
    listed = [f"s3://{s3_bucket}/images/a.jpg", str(local), str(tmp_path / "missing.png")]
    (tmp_path / "list.txt").write_text("\n".join(listed) + "\n")
    assert job(tmp_path / "list.txt", tmp_path / "out2", weights) == 0
    rows = check_contract(*read_tables(str(tmp_path / "out2")), CLASSES)
    assert [rows[u]["status"] for u in listed] == ["ok", "ok", "error"]
    assert "not found" in rows[listed[2]]["error"]


def test_bad_configuration_exits_2_before_writing(tmp_path, capsys, weights):
    out = tmp_path / "out"
    assert main(["--input", str(tmp_path / "nowhere"), "--output", str(out), "--weights", weights]) == 2
    assert "--input" in capsys.readouterr().err and not out.exists()
    assert main(["--input", str(tmp_path), "--output", str(out), "--batch-size", "0", "--weights", "random"]) == 2
    assert "--batch-size" in capsys.readouterr().err
    assert main(["--input", str(tmp_path), "--output", str(out)]) == 2
    assert "weights" in capsys.readouterr().err
    assert main(["--input", str(tmp_path), "--output", str(out), "--weights", weights, "--classes", "a,b"]) == 2
    assert "3 classes" in capsys.readouterr().err and not out.exists()
    (tmp_path / "cfg.yaml").write_text("batch_size: 3\nmodle: fcn8s\n")
    assert main(["--config", str(tmp_path / "cfg.yaml"), "--input", str(tmp_path), "--output", str(out)]) == 2
    assert "--modle: unknown option" in capsys.readouterr().err


def test_a_folder_without_images_exits_2_naming_it(tmp_path, capsys, ray_local, weights):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "notes.txt").write_text("not an image")
    assert job(folder, tmp_path / "out", weights) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --input {folder}: no image files in it") and len(err.strip().splitlines()) == 1
