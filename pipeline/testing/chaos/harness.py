"""The harness: start ``jobs.segment`` as a subprocess, wait for it, signal it or its actor, reap Ray."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from .check import masks_files, readers_see
from .outcome import Outcome

REPO = Path(__file__).resolve().parents[3]
CLASSES = "sky,land,sea"
JOB_FLAGS = ["--weights", "random", "--classes", CLASSES, "--batch-size", "2", "--decode-batch-size", "2"]
JOB_FLAGS += ["--rows-per-file", "4", "--num-cpus", "3", "--actors-max", "1"]
ACTOR = "MapBatches(Segmenter)"
JOB_TIMEOUT = 300.0


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
