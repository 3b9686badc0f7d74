"""Read a run's output back with DuckDB: what a reader sees mid-run, and the tally of a finished one."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from .outcome import Outcome


def masks_files(out: Path) -> list[Path]:
    return sorted((Path(out) / "masks").glob("*.parquet"))


def readers_see(out: Path, outcome: Outcome) -> int | None:
    """What a reader gets from ``masks/`` at this moment; an unreadable file there is a problem."""
    query = "select count(*), count(distinct filename) from read_parquet(?, filename = true)"
    try:
        rows, files = duckdb.connect().execute(query, [f"{out}/masks/**/*.parquet"]).fetchone()
    except duckdb.Error as exc:
        outcome.problems.append(f"masks/ unreadable right after the signal: {exc}")
        return None
    outcome.notes.append(f"right after the signal DuckDB reads {rows} rows in {files} files of masks/")
    return rows


def tally(outcome: Outcome, out: Path, expected: list[str]) -> Outcome:
    """Count with DuckDB over ``out/masks/*.parquet``: rows, errors, lost and duplicated inputs.

    Args:
        outcome: filled in place and returned.
        out: the run's output folder (a local copy for S3).
        expected: the ``source`` of every input.
    """
    outcome.inputs = len(expected)
    masks = Path(out) / "masks"
    con = duckdb.connect()
    con.execute("create table expected (source varchar)")
    con.executemany("insert into expected values (?)", [[s] for s in expected])
    if list(masks.glob("*.parquet")):
        select = "select image_id, source, status, error from read_parquet(?)"
        con.execute(f"create table masks as {select}", [f"{masks}/*.parquet"])
    else:
        con.execute("create table masks (image_id varchar, source varchar, status varchar, error varchar)")
    outcome.rows, outcome.errors = con.execute("select count(*), count_if(status = 'error') from masks").fetchone()
    outcome.duplicated = con.execute("select count(*) - count(distinct image_id) from masks").fetchone()[0]
    lost = "select count(*) from expected where source not in (select source from masks)"
    outcome.lost = con.execute(lost).fetchone()[0]
    strays = con.execute("select source from masks except select source from expected").fetchall()
    if strays:
        outcome.problems.append(f"rows for sources that were never input: {[s for (s,) in strays][:5]}")
    stats = sorted((Path(out) / "class_stats").glob("*.parquet"))
    if {p.name for p in stats} - {p.name for p in masks.glob("*.parquet")}:
        outcome.problems.append("class_stats/ holds files without a masks/ partner")
    if stats:
        twins = "select count(*) - count(distinct (image_id, class_id)) from read_parquet(?)"
        if con.execute(twins, [f"{out}/class_stats/*.parquet"]).fetchone()[0]:
            outcome.problems.append("class_stats/ repeats (image_id, class_id) rows")
    if [p for p in (Path(out) / "_staging").rglob("*") if p.is_file()]:
        outcome.problems.append("_staging/ still holds files after the last run")
    rows = con.execute("select source, status, error from masks").fetchall()
    outcome.rows_by_source = {source: (status, error) for source, status, error in rows}
    manifest = Path(out) / "_manifest.json"
    outcome.runs = json.loads(manifest.read_text())["runs"] if manifest.is_file() else []
    return outcome
