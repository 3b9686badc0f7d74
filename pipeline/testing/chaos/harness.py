"""The harness: start ``jobs.segment`` as a subprocess, signal it or its actor, count ``masks/`` with DuckDB."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import psutil
from PIL import Image

REPO = Path(__file__).resolve().parents[3]
CLASSES = "sky,land,sea"
JOB_FLAGS = ["--weights", "random", "--classes", CLASSES, "--batch-size", "2", "--decode-batch-size", "2"]
JOB_FLAGS += ["--rows-per-file", "4", "--num-cpus", "3", "--actors-max", "1"]
ACTOR = "MapBatches(Segmenter)"
ODD_NAMES = ("sp ace ;$(x)'\"&.png", "hash#frag%2e%2e.jpg", "ünï 日本 [1]*.png")
JOB_TIMEOUT = 300.0


@dataclass
class Outcome:
    """What a scenario fed the job, what reached ``masks/``, and every guarantee it saw broken.

    Attributes:
        scenario: name shown in the table.
        inputs: inputs the scenario expects one masks row for.
        rows, errors: rows in ``masks/`` and how many have status ``error``.
        lost, duplicated: inputs without a row; rows beyond one per ``image_id``.
        problems: broken guarantees (a passing scenario has none).
        notes: what was done and seen (signals sent, exit codes, proxy counts).
        rows_by_source: ``source -> (status, error)`` of every masks row.
        runs: the run records of ``_manifest.json``.
        log: path of the jobs' combined stdout and stderr.
        details: scenario-specific facts (secrets used, output copy, ...).
    """

    scenario: str
    inputs: int = 0
    rows: int = 0
    errors: int = 0
    lost: int = 0
    duplicated: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    rows_by_source: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    runs: list[dict] = field(default_factory=list)
    log: str = ""
    details: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.problems and self.lost == 0 and self.duplicated == 0 and self.rows == self.inputs


def make_images(folder: Path, count: int, start: int = 0) -> list[str]:
    """Write ``count`` small PNG and JPEG files (the first few with hostile names); return all sources."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + count):
        name = ODD_NAMES[i] if i < len(ODD_NAMES) else f"img-{i:03d}.{('jpg', 'png')[i % 2]}"
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (48, 64, 3), np.uint8)).save(folder / name)
    return sources(folder)


def sources(folder: Path) -> list[str]:
    """The ``source`` values the job gives the files of ``folder``."""
    return sorted(os.path.abspath(p) for p in Path(folder).rglob("*") if p.is_file())


def job_command(input_uri, output_uri, *extra: str) -> list[str]:
    """The real job, small batches and files so that a run makes many commits."""
    argv = ["--input", str(input_uri), "--output", str(output_uri), *JOB_FLAGS, *extra]
    return [sys.executable, "-m", "jobs.segment", *argv]


def start_job(command: list[str], log: str, env: dict | None = None) -> subprocess.Popen:
    """Start the job in a session of its own, as a terminal would: Ctrl-C reaches its process group.

    Args:
        command: from ``job_command``.
        log: file that collects stdout and stderr.
        env: variables to set (``None`` removes one); ``RAY_ADDRESS`` is always removed.
    """
    environ = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    for key, value in (env or {}).items():
        if value is None:
            environ.pop(key, None)
        else:
            environ[key] = value
    with open(log, "ab") as out:
        return subprocess.Popen(
            command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=environ, start_new_session=True
        )


def finish(proc: subprocess.Popen, outcome: Outcome, expect: int | None = 0, timeout: float = JOB_TIMEOUT) -> int:
    """Wait for the job; an exit code other than ``expect`` (if given) is a problem."""
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        outcome.problems.append(f"the job was still running after {timeout:.0f}s: killed")
        os.killpg(proc.pid, signal.SIGKILL)
        code = proc.wait()
    if expect is not None and code != expect:
        tail = Path(outcome.log).read_text(errors="replace")[-1500:]
        outcome.problems.append(f"exit code {code}, expected {expect}; log ends:\n{tail}")
    return code


def run_job(outcome: Outcome, command: list[str], env: dict | None = None) -> int:
    return finish(start_job(command, outcome.log, env), outcome)


def masks_files(out: Path) -> list[Path]:
    return sorted((Path(out) / "masks").glob("*.parquet"))


def wait_for(predicate, proc: subprocess.Popen, timeout: float = JOB_TIMEOUT) -> bool:
    """Poll ``predicate`` every 20 ms while ``proc`` runs; ``False`` if it ended or timed out first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def descendants(proc: subprocess.Popen) -> list[psutil.Process]:
    try:
        return psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def find_actor(proc: subprocess.Popen) -> psutil.Process | None:
    """The inference actor's worker process (Ray titles it ``ray::MapWorker(MapBatches(Segmenter))``)."""
    for child in descendants(proc):
        with contextlib.suppress(psutil.Error):
            if ACTOR in child.name() or ACTOR in " ".join(child.cmdline()):
                return child
    return None


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


def interrupt(proc: subprocess.Popen, out: Path, outcome: Outcome, sig: int, inputs: int) -> None:
    """Send ``sig`` once this run committed a masks file, check readers, then wait for Ray to go.

    SIGINT goes to the process group (a terminal's Ctrl-C); SIGKILL to the driver alone.
    """
    before = len(masks_files(out))
    if not wait_for(lambda: len(masks_files(out)) > before, proc):
        outcome.problems.append(f"the run ended (exit {proc.poll()}) before a {signal.Signals(sig).name} could land")
        return
    family = descendants(proc)
    os.killpg(proc.pid, sig) if sig == signal.SIGINT else proc.send_signal(sig)
    committed = readers_see(out, outcome)
    if committed is not None and committed >= inputs:
        outcome.problems.append("the signal came after every input was committed: not mid-run")
    code = finish(proc, outcome, expect=None, timeout=60)
    outcome.notes.append(f"{signal.Signals(sig).name} to the driver: exit code {code}")
    if "Traceback" in Path(outcome.log).read_text(errors="replace"):
        outcome.notes.append("the job printed a Python traceback as it stopped")
    reap(family, outcome)


def reap(family: list[psutil.Process], outcome: Outcome, grace: float = 60.0) -> None:
    """Wait for the killed job's workers to go (one left could still write); then end Ray's orphans."""
    agents, workers = [], []
    for p in family:
        with contextlib.suppress(psutil.Error):
            (agents if p.name().endswith("Agent") else workers).append(p)
    _, alive = psutil.wait_procs(workers, timeout=grace)
    if alive:
        names = sorted({p.name() for p in alive if p.is_running()})
        outcome.problems.append(f"{len(alive)} Ray processes still ran {grace:.0f}s after the driver ended: {names}")
    orphans = [p for p in agents + alive if p.is_running()]
    if orphans:
        outcome.notes.append(f"ended {len(orphans)} orphaned Ray processes: {sorted({p.name() for p in orphans})}")
    for p in orphans:
        with contextlib.suppress(psutil.Error):
            p.kill()


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


def begin(workdir: Path, key: str, scenario: str) -> tuple[Outcome, Path]:
    """A fresh outcome, log and output folder for scenario ``key`` (left over ones are removed)."""
    for old in (workdir / f"{key}-out", workdir / f"{key}-in"):
        shutil.rmtree(old, ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / f"{key}.log").unlink(missing_ok=True)
    return Outcome(scenario, log=str(workdir / f"{key}.log")), workdir / f"{key}-out"
