"""Per-batch timing records of each stage, for the benchmark; nothing is recorded unless it asks.

With ``FCN_PROBE_DIR`` set (the benchmark sets it before Ray starts, so every worker inherits it),
each stage appends one JSON line per batch to ``<dir>/<pid>.jsonl``: its stage, rows, wall-clock
start and end, the process CPU seconds the batch took and any figures the stage adds (the inference
actor adds ``model_cpu`` and ``model_seconds``, its work inside the model). Unset, ``probe`` costs
one environment lookup per batch.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import time
from collections.abc import Iterator

ENV = "FCN_PROBE_DIR"


@contextlib.contextmanager
def probe(stage: str, rows: int) -> Iterator[dict]:
    """Record one batch of ``stage``; the caller may add figures to the yielded dict.

    Args:
        stage: ``read``, ``decode``, ``segment``, ``finish`` or ``write``.
        rows: rows in the batch.
    """
    folder = os.environ.get(ENV)
    extra: dict = {}
    if not folder:
        yield extra
        return
    wall, cpu = time.time(), time.process_time()
    yield extra
    record = {"stage": stage, "pid": os.getpid(), "rows": rows, "start": wall, "end": time.time()}
    record["cpu"] = time.process_time() - cpu
    with open(os.path.join(folder, f"{os.getpid()}.jsonl"), "a", encoding="utf-8") as f:
        f.write(json.dumps({**record, **extra}) + "\n")


@contextlib.contextmanager
def model_work(extra: dict, synchronize=None) -> Iterator[None]:
    """Add the wall and process CPU seconds of a block to ``extra["model_seconds"]`` and ``["model_cpu"]``.

    Args:
        extra: the dict ``probe`` yielded.
        synchronize: called before each clock read (CUDA work is asynchronous).
    """
    if not os.environ.get(ENV):
        yield
        return
    if synchronize:
        synchronize()
    wall, cpu = time.perf_counter(), time.process_time()
    yield
    if synchronize:
        synchronize()
    extra["model_seconds"] = extra.get("model_seconds", 0.0) + time.perf_counter() - wall
    extra["model_cpu"] = extra.get("model_cpu", 0.0) + time.process_time() - cpu


def read_records(folder: str) -> list[dict]:
    """Every record written under ``folder``, oldest first."""
    records = []
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), encoding="utf-8") as f:
            records += [json.loads(line) for line in f if line.strip()]
    return sorted(records, key=lambda r: r["end"])


def probed(stage: str):
    """Decorate a batch function ``fn(batch, ...)`` so that each call is one ``probe`` record."""

    def wrap(fn):
        @functools.wraps(fn)
        def timed(batch, *args, **kwargs):
            rows = batch.num_rows if hasattr(batch, "num_rows") else len(next(iter(batch.values()), ()))
            with probe(stage, rows):
                return fn(batch, *args, **kwargs)

        return timed

    return wrap
