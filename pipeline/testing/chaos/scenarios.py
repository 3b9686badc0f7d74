"""The scenarios of issue 4 in one registry: the clean baseline, running them all, and the table that sums them up."""

from __future__ import annotations

from pathlib import Path

from .check import tally
from .harness import job_command, run_job
from .hostile import hostile_inputs
from .inputs import make_images, sources
from .kills import actor_killed, ctrl_c, driver_killed, nightly
from .node_loss import worker_lost
from .outcome import Outcome, begin
from .races import racing_runs, replaced_files
from .s3_faults import s3_transient


def clean_run(workdir: Path, images: Path) -> Outcome:
    """a. The baseline: one run, no faults.

    Args:
        workdir: folder for this scenario's inputs, output and log.
        images: folder of the shared input images.
    """
    outcome, out = begin(workdir, "a", "a. clean run")
    run_job(outcome, job_command(images, out))
    return tally(outcome, out, sources(images))


SCENARIOS = {
    "a": clean_run,
    "b": actor_killed,
    "c": driver_killed,
    "d": ctrl_c,
    "e": s3_transient,
    "f": hostile_inputs,
    "g": nightly,
    "h": racing_runs,
    "i": replaced_files,
    "j": worker_lost,
}


def run_all(workdir: Path, images: int = 12, only: str = "".join(SCENARIOS)) -> list[Outcome]:
    """Run the scenarios named by ``only`` (letters) over ``images`` small images in ``workdir``.

    Args:
        workdir: an empty folder for inputs, outputs and logs.
        images: how many images the scenarios a to e share.
        only: letters of the scenarios to run, in order.
    """
    folder = workdir / "images"
    make_images(folder, images)
    outcomes = []
    for key in only:
        try:
            outcomes.append(SCENARIOS[key](workdir, folder))
        except Exception as exc:  # one broken scenario must not hide the others
            outcomes.append(Outcome(f"{key}. {SCENARIOS[key].__name__}", problems=[f"{type(exc).__name__}: {exc}"]))
    return outcomes


def table(outcomes: list[Outcome]) -> str:
    """The scenarios as a text table, with notes and problems under it."""
    head = ("scenario", "inputs", "rows out", "errors", "lost", "duplicated", "result")
    lines = [f"{head[0]:<32}" + "".join(f"{h:>11}" for h in head[1:])]
    for o in outcomes:
        numbers = "".join(f"{v:>11}" for v in (o.inputs, o.rows, o.errors, o.lost, o.duplicated))
        lines.append(f"{o.scenario:<32}{numbers}{'ok' if o.passed else 'FAILED':>11}")
    for o in outcomes:
        lines += [f"{o.scenario}: {note}" for note in o.notes]
        lines += [f"{o.scenario}: PROBLEM {problem}" for problem in o.problems]
    return "\n".join(lines)
