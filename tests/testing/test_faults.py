"""Issue 4 under real faults: killed actor and driver, Ctrl-C, flaky S3, hostile files and ids, refusals.

Every scenario runs ``python -m jobs.segment`` as a subprocess through ``pipeline.testing.chaos``; DuckDB
counts what reached ``masks/``: every input exactly once, whatever was done to the job.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.segment import main
from pipeline.testing import chaos

IMAGES = 10
OUTPUT_FILE = re.compile(r"(masks|class_stats)/part-[0-9A-Za-z-]+\.parquet|_manifest\.json")


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("faults") / "images"
    chaos.make_images(folder, IMAGES)
    return folder


@pytest.fixture(scope="module")
def clean(tmp_path_factory, images) -> chaos.Outcome:
    return chaos.clean_run(tmp_path_factory.mktemp("clean"), images)


@pytest.fixture(scope="module")
def s3_run(tmp_path_factory, images) -> chaos.Outcome:
    return chaos.s3_transient(tmp_path_factory.mktemp("s3"), images)


def exactly_once(outcome: chaos.Outcome) -> None:
    assert outcome.problems == []
    assert (outcome.lost, outcome.duplicated) == (0, 0)
    assert outcome.rows == outcome.inputs > 0


@pytest.mark.slow
def test_clean_run(clean):
    exactly_once(clean)
    assert clean.errors == 0
    counts = {"rows": IMAGES, "ok": IMAGES, "errors": 0, "already_committed": 0, "retried": 0}
    assert clean.runs[-1]["counts"] == counts and clean.runs[-1]["complete"]
    log = Path(clean.log).read_text(errors="replace")  # quiet: Ray's INFO, WARNING and warnings go to a file
    assert "Ray's own log lines go to" in log and not re.search(r"\b(INFO|WARNING)\b|UserWarning", log), log
    assert not re.search(r"^\[[^\]]* E \d+ \d+\]", log, re.M), log  # no ERROR-level line of Ray's C++ core


@pytest.mark.slow
def test_inference_actor_killed_mid_run(tmp_path, images):
    outcome = chaos.actor_killed(tmp_path, images)
    exactly_once(outcome)
    assert any(n.startswith("SIGKILL to the actor") for n in outcome.notes)
    assert outcome.runs[-1]["counts"]["rows"] == IMAGES  # the same run finished, no rerun


@pytest.mark.slow
@pytest.mark.parametrize("scenario", [chaos.driver_killed, chaos.ctrl_c], ids=["sigkill", "ctrl-c"])
def test_driver_stopped_mid_run_then_rerun(tmp_path, images, scenario):
    outcome = scenario(tmp_path, images)
    exactly_once(outcome)
    # readers saw whole files only, right after the signal (a broken file would be a problem above)
    assert any(n.startswith("right after the signal DuckDB reads") for n in outcome.notes)
    stopped, rerun = outcome.runs  # the stopped run says it never completed; the rerun skips what it committed
    assert stopped["complete"] is False and rerun["complete"] is True
    # a SIGKILLed driver's workers are fenced out by the lease at once, so the rerun has work left; a
    # Ctrl-C'd driver shuts down and lets the write tasks in flight finish, which may be all of them
    most = IMAGES - 1 if scenario is chaos.driver_killed else IMAGES
    assert 0 < rerun["counts"]["already_committed"] <= most
    assert rerun["counts"]["rows"] == IMAGES - rerun["counts"]["already_committed"]


@pytest.mark.slow
def test_transient_s3_errors(s3_run):
    exactly_once(s3_run)
    assert all(s3_run.details["proxy"][fault] > 0 for fault in chaos.FAULTS)


@pytest.mark.slow
def test_secrets_stay_out_of_manifest_metadata_and_logs(s3_run):
    copy, log = Path(s3_run.details["copy"]), Path(s3_run.log).read_bytes()
    files = sorted(copy.rglob("*.parquet"))
    assert files and b"done:" in log
    metadata = [k + b"=" + v for f in files for k, v in (pq.read_metadata(f).metadata or {}).items()]
    for secret in s3_run.details["secrets"]:
        needle = secret.encode()
        assert needle not in (copy / "_manifest.json").read_bytes()
        assert not [m for m in metadata if needle in m]
        assert needle not in log
        assert not [f for f in files if needle in f.read_bytes()]


HOSTILE = {
    "zero.jpg": ("error", "the file is empty (0 bytes)"),
    "truncated.jpg": ("error", "the image is truncated or corrupt"),
    "truncated.png": ("error", "the image is truncated or corrupt"),
    "text.png": ("error", "not a recognised image format"),
    "bomb.png": ("error", "raise --max-pixels to allow it"),
    "bomb-warning.png": ("error", "raise --max-pixels to allow it"),
    "missing.png": ("error", "listed in the URI list but not found"),
    "sixteen.png": ("ok", None),
    "onebit.png": ("ok", None),
    "cmyk.jpg": ("ok", None),
    "good.png": ("ok", None),
}


@pytest.mark.slow
def test_hostile_inputs_become_error_rows(tmp_path):
    outcome = chaos.hostile_inputs(tmp_path)
    exactly_once(outcome)
    rows = {Path(source).name: row for source, row in outcome.rows_by_source.items()}
    assert rows.keys() == HOSTILE.keys()
    for name, (status, phrase) in HOSTILE.items():
        assert rows[name][0] == status, (name, rows[name])
        assert (rows[name][1] is None) if phrase is None else (phrase in rows[name][1]), (name, rows[name])


@pytest.mark.slow
def test_nightly_kills_over_a_growing_folder(tmp_path):
    # killed runs of 4 files and more: a kill after the first file still lands mid-run (with 2 files, the
    # second was sometimes committed by its write task after the driver was killed)
    outcome = chaos.nightly(tmp_path, steps=(16, 12, 4, 3))
    exactly_once(outcome)
    assert outcome.notes.count("SIGKILL to the driver: exit code -9") == 2
    assert [r["counts"]["rows"] for r in outcome.runs][-1] == 3  # the last run: the new images only


@pytest.mark.slow
def test_ids_and_file_names_never_become_paths(tmp_path, images, clean):
    for name in chaos.ODD_NAMES:  # quotes, $(), #, %2e, spaces, unicode, glob characters, q?mark, _DSC0001
        assert clean.rows_by_source[os.path.abspath(images / name)][0] == "ok"

    ids = ["../../evil", "/tmp/fcn-evil-absolute", "..", "a/../../b-evil", "%2e%2e%2fevil", "evil\\..\\win", "ünï"]
    blob = (images / "img-005.png").read_bytes()
    folder, out = tmp_path / "deep" / "in", tmp_path / "deep" / "out"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"image": [blob] * len(ids), "key": ids}), folder / "odd ;$(x)'\"&#%2e ü.parquet")
    before = set(tmp_path.rglob("*"))
    outcome = chaos.Outcome("ids", log=str(tmp_path / "job.log"))
    chaos.run_job(outcome, chaos.job_command(folder, out, "--id-column", "key"))
    assert outcome.problems == []

    written = sorted(p for p in tmp_path.rglob("*") if p not in before)
    assert all(p == out or out in p.parents for p in written if p != tmp_path / "job.log")
    assert all(OUTPUT_FILE.fullmatch(str(p.relative_to(out))) for p in written if p.is_file() and out in p.parents)
    assert not Path("/tmp/fcn-evil-absolute").exists() and not list(chaos.REPO.glob("*evil*"))
    con = duckdb.connect()
    masks_ids = con.execute("select image_id from read_parquet(?)", [f"{out}/masks/*.parquet"]).fetchall()
    stats_ids = con.execute(
        "select distinct image_id from read_parquet(?)", [f"{out}/class_stats/*.parquet"]
    ).fetchall()
    assert sorted(i for (i,) in masks_ids) == sorted(ids) and {i for (i,) in stats_ids} == set(ids)


def refusals(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    blocker = tmp_path / "a-file"
    blocker.write_text("an output folder cannot go under a file")
    images = str(tmp_path / "in")
    return {
        "bad config": ([images, str(tmp_path / "out"), "--batch-size", "0"], "--batch-size"),
        "unwritable output": ([images, str(blocker / "out")], "cannot write there"),
        "unreachable source": (
            ["s3://fcn-nowhere/images/", str(tmp_path / "out"), "--s3-endpoint-url", "http://127.0.0.1:9"],
            "--input s3://fcn-nowhere/images/",
        ),
    }


@pytest.mark.parametrize("case", ["bad config", "unwritable output", "unreachable source"])
def test_refused_before_any_work(tmp_path, capsys, monkeypatch, case):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "chaos")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "chaos")
    chaos.make_images(tmp_path / "in", 1)
    (input_uri, output_uri, *extra), phrase = refusals(tmp_path)[case]
    before = sorted(tmp_path.rglob("*"))
    argv = ["--input", input_uri, "--output", output_uri, "--weights", "random", "--classes", chaos.CLASSES]
    assert main([*argv, *extra]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: ") and phrase in err
    assert sorted(tmp_path.rglob("*")) == before
