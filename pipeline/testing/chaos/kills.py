"""Scenarios b, c, d and g: the inference actor or the driver killed (SIGKILL, Ctrl-C) mid-run, then rerun."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path

from .check import masks_files, tally
from .harness import find_actor, finish, interrupt, job_command, run_job, start_job, wait_for
from .inputs import make_images, sources
from .outcome import Outcome, begin


def actor_killed(workdir: Path, images: Path) -> Outcome:
    """b. A watcher thread SIGKILLs the inference actor mid-run; the job itself must still finish.

    Args:
        workdir: folder for this scenario's inputs, output and log.
        images: folder of the shared input images.
    """
    outcome, out = begin(workdir, "b", "b. inference actor killed")
    proc = start_job(job_command(images, out), outcome.log)
    watcher = threading.Thread(target=_kill_actor, args=(proc, out, outcome), daemon=True)
    watcher.start()
    finish(proc, outcome)
    watcher.join()
    return tally(outcome, out, sources(images))


def _kill_actor(proc: subprocess.Popen, out: Path, outcome: Outcome) -> None:
    seen: dict = {}

    def ready() -> bool:  # the actor has segmented rows that are committed (or has run for 20 s)
        seen["actor"] = actor = find_actor(proc)
        since = seen.setdefault("since", time.monotonic()) if actor else None
        return actor is not None and (bool(masks_files(out)) or time.monotonic() - since > 20)

    if not wait_for(ready, proc):
        outcome.problems.append("the job ended before its inference actor could be killed")
        return
    seen["actor"].kill()
    outcome.notes.append(f"SIGKILL to the actor (pid {seen['actor'].pid}), {len(masks_files(out))} files committed")
    if wait_for(lambda: (a := find_actor(proc)) is not None and a.pid != seen["actor"].pid, proc, 60):
        outcome.notes.append(f"Ray started a new actor (pid {find_actor(proc).pid})")


def driver_killed(workdir: Path, images: Path, sig: int = signal.SIGKILL) -> Outcome:
    """c. SIGKILL the driver once a masks file is committed, then rerun the same command.

    Args:
        workdir: folder for this scenario's inputs, output and log.
        images: folder of the shared input images.
        sig: ``SIGKILL`` to the driver, or ``SIGINT`` to its process group (scenario d).
    """
    key, title = ("c", "c. driver SIGKILL, rerun") if sig == signal.SIGKILL else ("d", "d. Ctrl-C, rerun")
    outcome, out = begin(workdir, key, title)
    command, expected = job_command(images, out), sources(images)
    interrupt(start_job(command, outcome.log), out, outcome, sig, len(expected))
    run_job(outcome, command)
    return tally(outcome, out, expected)


def ctrl_c(workdir: Path, images: Path) -> Outcome:
    """d. Ctrl-C (SIGINT to the job's process group) mid-run, then rerun.

    Args:
        workdir: folder for this scenario's inputs, output and log.
        images: folder of the shared input images.
    """
    return driver_killed(workdir, images, signal.SIGINT)


def nightly(workdir: Path, images: Path | None = None, steps: tuple[int, ...] = (16, 12, 4, 3)) -> Outcome:
    """g. A folder grows before each run; every run but the last two is killed mid-run.

    The last run follows a completed one, so it must process exactly the images added before it.

    Args:
        workdir: folder for this scenario's inputs, output and log.
        images: unused (the folder grows with images of its own).
        steps: images added before each run (at least three runs).
    """
    outcome, out = begin(workdir, "g", "g. nightly: kill, grow, resume")
    folder, total = workdir / "g-in", 0
    for step, count in enumerate(steps):
        expected = make_images(folder, count, start=total)
        total += count
        proc = start_job(job_command(folder, out), outcome.log)
        if step < len(steps) - 2:
            interrupt(proc, out, outcome, signal.SIGKILL, len(expected))
        else:
            finish(proc, outcome)
    tally(outcome, out, expected)
    last = outcome.runs[-1]["counts"] if outcome.runs else {}
    if last.get("rows") != steps[-1] or last.get("already_committed") != total - steps[-1]:
        outcome.problems.append(f"the last run's counts are {last}; expected only the {steps[-1]} new images")
    return outcome
