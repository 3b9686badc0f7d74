"""A lease on an output folder, so two runs into one output never delete each other's work.

``OUTPUT/_lease.json`` names the run that holds it (run id, host, pid) and when it expires. It is
created only where none exists (``O_EXCL`` on a local disk; ``If-None-Match: *`` on S3), renewed
by a thread of the driver while the run goes on, and deleted when the run ends. A lease past its
expiry, or one whose holder on this same host is no longer alive, is stale: the next run takes it
over. A run that finds a live lease is refused before it writes anything.

The lease also fences the write tasks (``fenced_out``): a task commits only while its own run holds
the lease and, on the driver's host, while that driver lives. The workers of a killed driver go on
for a while (Ray ends them when it notices); without the fence they could commit rows after a rerun
listed what is committed, and the rerun would write the same inputs again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import socket
import threading
import time

import fsspec
import psutil
import pyarrow.fs as pafs

LEASE = "_lease.json"
log = logging.getLogger(__name__)


class LeaseHeld(RuntimeError):
    """Another live run holds the output; the message names it and what to do."""


def held_by_other(fs: fsspec.AbstractFileSystem, root: str, run_id: str) -> dict | None:
    """The live lease of another run on ``root``, or None (no lease, a stale one, or our own)."""
    held = read_lease(fs, f"{root}/{LEASE}")
    return held if held and held.get("run_id") != run_id and not stale(held) else None


def stale(held: dict) -> bool:
    """Past its expiry, or held by a process of this host that is gone (a killed run)."""
    return held.get("expires", 0) < time.time() or holder_gone(held)


def holder_gone(held: dict) -> bool:
    """The lease's driver ran on this host and is gone (a zombie, killed and not yet reaped, is gone)."""
    if held.get("host") != socket.gethostname():
        return False
    try:
        return psutil.Process(int(held.get("pid", -1))).status() == psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, ValueError):
        return True


def fenced_out(held: dict | None, run_id: str) -> str | None:
    """Why the write tasks of ``run_id`` may no longer commit into an output whose lease is ``held``.

    ``None`` when they may: the lease is the run's own and its driver lives, or there is no lease (a
    sink used without a run, as the benchmarks and tests do). Expiry alone does not fence a run out:
    a live driver whose renewal is late still owns its work, until another run takes the lease over.
    """
    if held is None:
        return None
    if held.get("run_id") != run_id:
        return f"run {held.get('run_id')} holds the output's lease now"
    if holder_gone(held):
        return f"its driver (pid {held.get('pid')} on {held.get('host')}) is gone"
    return None


def describe(root: str, held: dict) -> str:
    until = dt.datetime.fromtimestamp(held["expires"], dt.timezone.utc).strftime("%H:%M:%S UTC")
    return (
        f"--output {root} is in use by run {held['run_id']} (host {held['host']}, pid {held['pid']}); "
        f"wait for it to finish, or use another --output. If that run is dead, its lease expires at {until} "
        f"(it is taken over at once from the same host)"
    )


@contextlib.contextmanager
def hold(fs: fsspec.AbstractFileSystem, root: str, run_id: str, seconds: float):
    """Hold the lease on ``root`` for the body; raise ``LeaseHeld`` if another live run holds it.

    Args:
        fs: fsspec filesystem of the output (S3 or local).
        root: the output folder, as a path inside ``fs``.
        run_id: this run's id, written into the lease.
        seconds: time a lease lives without renewal; renewed every quarter of it.
    """
    path = f"{root}/{LEASE}"
    record = {"run_id": run_id, "host": socket.gethostname(), "pid": os.getpid(), "seconds": seconds}
    _acquire(fs, path, root, record)
    stop = threading.Event()
    renewer = threading.Thread(target=_renew, args=(fs, path, record, stop), name="output-lease", daemon=True)
    renewer.start()
    try:
        yield record
    finally:
        stop.set()
        renewer.join()
        if (read_lease(fs, path) or {}).get("run_id") == run_id:
            fs.rm(path)


def _acquire(fs, path: str, root: str, record: dict) -> None:
    for _ in range(3):
        if _create(fs, path, {**record, "expires": time.time() + record["seconds"]}):
            return
        held = read_lease(fs, path)
        if held is None:  # released between our create and read: try again
            continue
        if not stale(held):
            raise LeaseHeld(describe(root, held))
        log.warning("taking over the stale lease of run %s on %s", held.get("run_id"), root)
        if read_lease(fs, path) == held:  # delete only the stale lease we judged, not a newer one
            fs.rm(path)
    raise LeaseHeld(f"--output {root}: another run took the lease while this one tried to; rerun later")


def _renew(fs, path: str, record: dict, stop: threading.Event) -> None:
    while not stop.wait(record["seconds"] / 4):
        held = read_lease(fs, path)
        if held is not None and held.get("run_id") != record["run_id"]:
            log.error("the lease on %s was taken by run %s: this run's commits may overlap it", path, held["run_id"])
            return
        fs.pipe_file(path, json.dumps({**record, "expires": time.time() + record["seconds"]}).encode())


def _create(fs, path: str, record: dict) -> bool:
    """Write ``record`` to ``path`` only if no file is there; True when this call created it."""
    data = json.dumps(record).encode()
    if "s3" in fs.protocol:
        bucket, key = path.split("/", 1)
        try:
            fs.call_s3("put_object", Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
            return True
        except (FileExistsError, OSError) as exc:
            if "PreconditionFailed" in repr(exc) or "412" in repr(exc) or isinstance(exc, FileExistsError):
                return False
            raise
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return True


def read_lease(fs, path: str) -> dict | None:
    """The lease record at ``path`` on an fsspec (the driver) or a pyarrow filesystem (the write tasks'
    fence, ``io/commit``), or None when there is none or it is unreadable."""
    try:
        if isinstance(fs, pafs.FileSystem):
            with fs.open_input_stream(path) as f:
                return json.loads(f.read())
        return json.loads(fs.cat_file(path))
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
        return None
