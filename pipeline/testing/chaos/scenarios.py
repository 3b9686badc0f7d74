"""The scenarios of issue 4, each a real fault injected into a real run, and the table that sums them up."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

from .flaky_s3 import FlakyS3Proxy, moto_server
from .harness import (
    Outcome,
    begin,
    find_actor,
    finish,
    interrupt,
    job_command,
    make_images,
    masks_files,
    run_job,
    sources,
    start_job,
    tally,
    wait_for,
)


def clean_run(workdir: Path, images: Path) -> Outcome:
    """a. The baseline: one run, no faults.

    Args:
        workdir: folder for this scenario's inputs, output and log.
        images: folder of the shared input images.
    """
    outcome, out = begin(workdir, "a", "a. clean run")
    run_job(outcome, job_command(images, out))
    return tally(outcome, out, sources(images))


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


def s3_transient(workdir: Path, images: Path, every: int = 4) -> Outcome:
    """e. Input and output on S3 behind a proxy that fails every ``every``-th request.

    The job's environment holds a secret key and a session token; ``details`` names them so
    callers can check that neither leaks into the outputs (copied to ``details["copy"]``) or the log.

    Args:
        workdir: folder for this scenario's output copy and log.
        images: folder of the images uploaded as the input.
        every: period of the proxy's faults.
    """
    outcome, out = begin(workdir, "e", "e. transient S3 errors")
    secret, token = f"chaos-secret-{os.urandom(8).hex()}", f"chaos-token-{os.urandom(8).hex()}"
    env = {"AWS_ACCESS_KEY_ID": "chaos", "AWS_SECRET_ACCESS_KEY": secret, "AWS_SESSION_TOKEN": token}
    env |= {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": None, "AWS_ENDPOINT_URL_S3": None}
    bucket = f"chaos-{os.urandom(4).hex()}"
    with moto_server() as (upstream, fs):
        fs.mkdir(bucket)
        names = [os.path.relpath(p, images) for p in sources(images)]
        for name in names:
            fs.put_file(str(Path(images) / name), f"{bucket}/in/{name}")
        with FlakyS3Proxy(upstream, every) as proxy:
            command = job_command(f"s3://{bucket}/in/", f"s3://{bucket}/out", "--s3-endpoint-url", proxy.url)
            run_job(outcome, command, env)
        outcome.notes.append(f"proxy: {dict(proxy.counts)}")
        fs.get(f"{bucket}/out", str(out), recursive=True)
    outcome.details = {"secrets": (secret, token), "proxy": dict(proxy.counts), "copy": str(out)}
    return tally(outcome, out, [f"s3://{bucket}/in/{n}" for n in names])


def hostile_files(folder: Path) -> dict[str, tuple[str, str | None]]:
    """Write the hostile files; return ``source -> (status, a phrase its error must contain)``.

    Args:
        folder: where to write them (``missing.png`` is listed but never written).
    """
    pixels = np.random.default_rng(0).integers(0, 256, (48, 64, 3), np.uint8)
    jpeg, png = _encode(Image.fromarray(pixels), "JPEG"), _encode(Image.fromarray(pixels), "PNG")
    sixteen = Image.fromarray(np.arange(40 * 50, dtype=np.uint16).reshape(40, 50) * 30)
    files = {
        "zero.jpg": (b"", ("error", "empty")),
        "truncated.jpg": (jpeg[: len(jpeg) // 2], ("error", "truncated")),
        "truncated.png": (png[: len(png) // 2], ("error", "truncated")),
        "text.png": (b"hello, I am not a picture\n", ("error", "not a recognised image")),
        "bomb.png": (_encode(Image.new("L", (3000, 3000), 7), "PNG"), ("error", "max-pixels")),
        "bomb-warning.png": (_encode(Image.new("RGB", (1200, 1000), 7), "PNG"), ("error", "max-pixels")),
        "sixteen.png": (_encode(sixteen, "PNG"), ("ok", None)),
        "onebit.png": (_encode(Image.fromarray(pixels).convert("1"), "PNG"), ("ok", None)),
        "cmyk.jpg": (_encode(Image.fromarray(pixels).convert("CMYK"), "JPEG"), ("ok", None)),
        "good.png": (png, ("ok", None)),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, (data, _) in files.items():
        (folder / name).write_bytes(data)
    expected = {os.path.abspath(folder / name): want for name, (_, want) in files.items()}
    return expected | {os.path.abspath(folder / "missing.png"): ("error", "not found")}


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def hostile_inputs(workdir: Path, images: Path | None = None) -> Outcome:
    """f. A manifest of hostile files and one that does not exist; ``--max-pixels 1000000``.

    Args:
        workdir: folder for this scenario's inputs, output and log.
        images: unused (the scenario writes its own files).
    """
    outcome, out = begin(workdir, "f", "f. hostile inputs")
    expected = hostile_files(workdir / "f-in")
    (workdir / "f-list.txt").write_text("".join(f"{s}\n" for s in expected))
    run_job(outcome, job_command(workdir / "f-list.txt", out, "--max-pixels", "1000000"))
    tally(outcome, out, list(expected))
    for source, (status, phrase) in expected.items():
        got = outcome.rows_by_source.get(source)
        if got and (got[0] != status or (phrase and phrase not in (got[1] or ""))):
            outcome.problems.append(f"{Path(source).name}: got {got}, expected {status} with {phrase!r}")
    return outcome


def nightly(workdir: Path, images: Path | None = None, steps: tuple[int, ...] = (8, 4, 4, 3)) -> Outcome:
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


SCENARIOS = {
    "a": clean_run,
    "b": actor_killed,
    "c": driver_killed,
    "d": ctrl_c,
    "e": s3_transient,
    "f": hostile_inputs,
    "g": nightly,
}


def run_all(workdir: Path, images: int = 12, only: str = "abcdefg") -> list[Outcome]:
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
