"""Scenarios of real archives over time: two runs racing into one output, and files replaced after a run."""

from __future__ import annotations

import shutil
from pathlib import Path

from .check import tally
from .harness import finish, job_command, run_job, start_job, wait_for
from .inputs import make_images, sources
from .outcome import Outcome, begin

LEASE = "_lease.json"


def racing_runs(workdir: Path, images: Path) -> Outcome:
    """h. A second run (an overlapping nightly job, a RayJob retry) starts while the first one writes.

    The second is refused while the first holds the output's lease and writes nothing; afterwards
    every input is in the table exactly once.

    Args:
        workdir: folder for this scenario's inputs, output and log.
        images: folder of the shared input images.
    """
    outcome, out = begin(workdir, "h", "h. two runs race")
    first = start_job(job_command(images, out), outcome.log)
    if not wait_for(lambda: (out / LEASE).is_file(), first):
        outcome.problems.append("the first run never took the output's lease")
    second = start_job(job_command(images, out), outcome.log)
    code = finish(second, outcome, expect=2)
    refused = "is in use by run" in Path(outcome.log).read_text(errors="replace")
    outcome.notes.append(f"the second run exited {code}" + (", refused naming the first" if refused else ""))
    if not refused:
        outcome.problems.append("the second run was not refused with a message naming the first")
    finish(first, outcome)
    if (out / LEASE).exists():
        outcome.problems.append("the lease was left behind after both runs ended")
    if len(runs := tally(outcome, out, sources(images)).runs) != 1:
        outcome.problems.append(f"the manifest records {len(runs)} runs; the refused one must write nothing")
    return outcome


def replaced_files(workdir: Path, images: Path) -> Outcome:
    """i. Half-uploaded files fail; the upload finishes (same path, new content); the nightly rerun
    does exactly those again, and the newer row is the only one.

    Args:
        workdir: folder for this scenario's inputs, output and log.
        images: folder of the shared input images (copied).
    """
    outcome, out = begin(workdir, "i", "i. half-uploaded, replaced")
    folder = workdir / "i-in"
    shutil.copytree(images, folder)
    make_images(folder / "late", 3, start=100)
    complete = {p: p.read_bytes() for p in (folder / "late").iterdir()}
    for path, data in complete.items():
        path.write_bytes(data[: len(data) // 3])  # still uploading when the first run reads it
    run_job(outcome, job_command(folder, out))
    first = tally(outcome, out, sources(folder)).errors
    for path, data in complete.items():
        path.write_bytes(data)
    run_job(outcome, job_command(folder, out))
    tally(outcome, out, sources(folder))
    outcome.notes.append(f"errors after the first run: {first}; after the rerun: {outcome.errors}")
    if first != len(complete) or outcome.errors:
        outcome.problems.append(f"expected {len(complete)} errors, then none; saw {first}, then {outcome.errors}")
    return outcome
