"""Evaluation: the FCN paper's metrics on hand-made masks, through Ray Data with both truth layouts."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.loop.evaluate import EvalConfig, evaluate, source_stem
from pipeline.loop.metrics import confusion_vector, scores
from pipeline.stages.postprocess import encode_png

NAMES = ["ground", "water", "road"]
# truth, prediction: 255 is ignored; "c" is an error row, "d" has no truth anywhere
MASKS = {
    "a": (np.array([[0, 0], [1, 1]], np.uint8), np.array([[0, 1], [1, 1]], np.uint8)),
    "b": (np.array([[2, 255], [2, 0]], np.uint8), np.array([[2, 2], [0, 0]], np.uint8)),
}
SOURCES = {"a": "/data/part-0.parquet#images/a.png", "b": "s3://bucket/photos/b.jpg", "c": "/x/c.png", "d": "/x/d.png"}
# by hand: confusion rows = truth [[2, 1, 0], [0, 2, 0], [1, 0, 1]]
EXPECTED = {
    "pixel_accuracy": 5 / 7,
    "mean_accuracy": (2 / 3 + 1 + 1 / 2) / 3,
    "mean_iu": (2 / 4 + 2 / 3 + 1 / 2) / 3,
    "frequency_weighted_iu": (3 * 2 / 4 + 2 * 2 / 3 + 2 * 1 / 2) / 7,
}


def test_metrics_by_hand():
    truth = np.array([[0, 0, 1], [1, 2, 255]])
    pred = np.array([[0, 1, 1], [1, 2, 0]])
    confusion = confusion_vector(truth, pred, 3)
    assert confusion.tolist() == [1, 1, 0, 0, 2, 0, 0, 0, 1]
    result = scores(confusion, NAMES)
    assert result["pixel_accuracy"] == pytest.approx(4 / 5)
    assert result["mean_accuracy"] == pytest.approx((1 / 2 + 1 + 1) / 3)
    assert result["mean_iu"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert result["frequency_weighted_iu"] == pytest.approx((2 * 1 / 2 + 2 * 2 / 3 + 1) / 5)
    assert result["per_class"]["water"]["iu"] == pytest.approx(2 / 3)


def test_absent_class_is_left_out_of_the_means():
    result = scores(confusion_vector(np.array([0, 0, 1]), np.array([0, 0, 1]), 3), NAMES)
    assert result["per_class"]["road"] == {"iu": None, "accuracy": None, "truth_pixels": 0, "predicted_pixels": 0}
    assert result["mean_iu"] == 1.0 and result["mean_accuracy"] == 1.0


def test_source_stem():
    assert [source_stem(s) for s in SOURCES.values()] == ["a", "b", "c", "d"]


def write_run(root) -> None:
    """A segmentation run's masks table, by hand: a and b ok, c an error row, d ok but without truth."""
    rows = []
    for key, source in SOURCES.items():
        pred = MASKS.get(key, (None, np.zeros((2, 2), np.uint8)))[1]
        error = key == "c"
        rows.append(
            {
                "image_id": key,
                "source": source,
                "status": "error" if error else "ok",
                "error": "cannot decode" if error else None,
                "mask_png": None if error else encode_png(pred),
            }
        )
    (root / "masks").mkdir(parents=True)
    table = pa.Table.from_pylist(rows).replace_schema_metadata({b"fcn.class_names": json.dumps(NAMES).encode()})
    pq.write_table(table, root / "masks" / "part-0.parquet")


def write_truth(root) -> tuple[str, str]:
    """The same truth twice: a Parquet table with a ``{bytes, path}`` column, and a folder of PNGs."""
    (root / "pngs").mkdir(parents=True)
    rows = []
    for key, (truth, _) in MASKS.items():
        (root / "pngs" / f"{key}.png").write_bytes(encode_png(truth))
        rows.append({"name": key, "label": {"bytes": encode_png(truth), "path": f"{key}.png"}})
    pq.write_table(pa.Table.from_pylist(rows), root / "truth.parquet")
    return str(root / "truth.parquet"), str(root / "pngs")


def check(result: dict) -> None:
    for key, value in EXPECTED.items():
        assert result[key] == pytest.approx(value), key
    expected = {"scored": 2, "errors": 1, "missing_truth": 1, "size_mismatch": 0, "unreadable": 0, "scenes": 0}
    assert result["counts"] == expected
    assert result["confusion"] == [[2, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert result["per_class"]["ground"]["iu"] == pytest.approx(0.5)


def test_png_folder_truth_matched_by_stem(ray_local, tmp_path):
    write_run(tmp_path / "run")
    _, folder = write_truth(tmp_path / "truth")
    check(evaluate(EvalConfig(masks=str(tmp_path / "run"), truth=folder)))


def test_parquet_truth_joined_on_id_through_the_cli(ray_local, tmp_path, capsys):
    pytest.importorskip("polars", reason="Ray Data's Dataset.join needs polars")
    from jobs.evaluate import main

    write_run(tmp_path / "run")
    table, _ = write_truth(tmp_path / "truth")
    out = tmp_path / "metrics.json"
    argv = ["--masks", str(tmp_path / "run"), "--truth", table, "--truth-column", "label", "--id-column", "name"]
    assert main([*argv, "--json", str(out)]) == 0
    check(json.loads(out.read_text()))
    printed = capsys.readouterr().out
    assert "mean IU" in printed and "scored 2 images" in printed


def test_missing_masks_is_a_clear_error(tmp_path, capsys):
    from jobs.evaluate import main

    assert main(["--masks", str(tmp_path / "nothing"), "--truth", str(tmp_path)]) == 2
    assert "no Parquet files" in capsys.readouterr().err
