"""Read a run's output back with real clients (DuckDB, pyarrow) and check the contract."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pyarrow.dataset as pads

from pipeline.stages.postprocess import decode_png


def read_tables(root: str, filesystem=None):
    """``(masks, class_stats)`` as pyarrow tables, read with pyarrow's own datasets."""
    masks = pads.dataset(f"{root}/masks", format="parquet", filesystem=filesystem).to_table()
    stats = pads.dataset(f"{root}/class_stats", format="parquet", filesystem=filesystem).to_table()
    return masks, stats


def check_contract(masks, stats, class_names) -> dict[str, dict]:
    """Every invariant of the output contract (docs/output-contract.md); returns rows by source."""
    con = duckdb.connect()
    con.register("masks", masks)
    con.register("stats", stats)
    assert con.execute("select count(*) - count(distinct image_id) from masks").fetchone()[0] == 0
    bad_sum = "select count(*) from masks where status = 'ok' and list_sum(class_pixels) > height * width"
    assert con.execute(bad_sum).fetchone()[0] == 0  # equal but for no-data pixels, checked on the masks below
    per_class = """
        select count(*) from stats s join masks m using (image_id)
        where s.pixels != m.class_pixels[s.class_id + 1] or s.class_name != ?[s.class_id + 1]
           or abs(s.fraction - s.pixels / list_sum(m.class_pixels)) > 1e-9
           or s.mean_confidence <= 0 or s.mean_confidence > 1 + 1e-6
    """
    assert con.execute(per_class, [list(class_names)]).fetchone()[0] == 0
    stats_total = """
        select count(*) from (select image_id, sum(pixels) p from stats group by 1) s
        join masks using (image_id) where p != list_sum(class_pixels)
    """
    assert con.execute(stats_total).fetchone()[0] == 0
    present = "select sum(len(list_filter(class_pixels, lambda x: x > 0))) from masks where status = 'ok'"
    assert con.execute(present).fetchone()[0] == stats.num_rows
    assert json.loads(masks.schema.metadata[b"fcn.class_names"]) == list(class_names)
    rows = {r["source"]: r for r in masks.to_pylist()}
    for row in rows.values():
        if row["status"] == "ok":
            mask = decode_png(row["mask_png"])
            assert mask.shape == (row["height"], row["width"])
            counted = np.bincount(mask[mask != 255].ravel(), minlength=len(class_names)).tolist()
            assert counted == row["class_pixels"]
            assert (mask == 255).sum() + sum(row["class_pixels"]) == row["height"] * row["width"]
        else:
            assert row["error"] and row["mask_png"] is None
    return rows
