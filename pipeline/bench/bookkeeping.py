"""The driver's bookkeeping at archive scale: ``python -m jobs.benchmark --bookkeeping N[,N...]``.

N inputs are made cheaply (empty ``.jpg`` files, 1,000 per folder) and committed masks tables of N rows
are written directly with pyarrow in the output's layout (``masks/part-RUN-DIGEST.parquet``,
``--rows-per-file`` rows each, the run's ``fcn.*`` metadata as the sink writes it), with no inference.
Each measurement runs in a fresh spawned process, so one cannot leave memory to the next:

- ``listing``: ``list_inputs``;
- ``resume_set``: ``run.resume_set`` (committed rows read, anti-join, changed versions) with 99% committed,
  the listing made and held before the clock starts;
- ``noop_resume``: the job's entry point (``jobs.segment.main``) on an output holding every input;
- ``resume_1pct``: the same with 1% new (empty files: they become error rows, through Ray and the pool);
- ``totals``: ``table_totals`` of the N-row table.

Memory: the process's resident set sampled every 5 ms in a thread (psutil), its peak less the resident set
just before the measurement (modules imported: the idle size). Ray's own processes are not counted.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import shutil
import threading
import time

import psutil
import pyarrow as pa
import pyarrow.parquet as pq

FILES_PER_FOLDER = 1000
MODEL = "fcn8s_mobilenet_v3"
MIB = 1 << 20
KINDS = ("listing", "resume_set", "noop_resume", "resume_1pct", "totals")


def make_inputs(workdir: str, n: int) -> str:
    """A folder of ``n`` empty ``.jpg`` files (made once per ``n`` and kept in ``workdir``)."""
    root = os.path.join(workdir, f"in-{n}")
    done = os.path.join(root, ".complete")
    if os.path.exists(done):
        return root
    shutil.rmtree(root, ignore_errors=True)
    for i in range(n):
        if i % FILES_PER_FOLDER == 0:
            os.makedirs(os.path.join(root, f"d{i // FILES_PER_FOLDER:05d}"))
        open(os.path.join(root, f"d{i // FILES_PER_FOLDER:05d}", f"{i:08d}.jpg"), "wb").close()
    open(done, "wb").close()
    return root


def commit_table(inputs: str, output: str, n: int, committed: int, config) -> None:
    """Write ``output/masks/`` as ``committed`` ok rows of the first inputs, the way the sink commits them."""
    from ..io.reading import image_id
    from ..io.schema import MASKS_SCHEMA, RunInfo
    from ..run import preflight

    shutil.rmtree(output, ignore_errors=True)
    plan = preflight(config)
    schema = MASKS_SCHEMA.with_metadata(RunInfo(plan.run_id, MODEL, plan.weights.sha256, plan.class_names).metadata())
    os.makedirs(os.path.join(output, "masks"))
    classes = len(plan.class_names)
    for start in range(0, committed, config.rows_per_file):
        stop = min(committed, start + config.rows_per_file)
        paths = [os.path.join(inputs, f"d{i // FILES_PER_FOLDER:05d}", f"{i:08d}.jpg") for i in range(start, stop)]
        rows = len(paths)
        stats = [os.stat(p) for p in paths]
        columns = {
            "image_id": [image_id(p) for p in paths],
            "source": paths,
            "source_version": [f"size={s.st_size};mtime_ns={s.st_mtime_ns}" for s in stats],
            "status": ["ok"] * rows,
            "height": [1] * rows,
            "width": [1] * rows,
            "mask_png": [b"\x89PNG"] * rows,
            "class_pixels": [[1] + [0] * (classes - 1)] * rows,
            "model": [MODEL] * rows,
            "weights_sha256": [plan.weights.sha256] * rows,
            "run_id": [plan.run_id] * rows,
        }
        table = pa.table({f.name: pa.array(columns.get(f.name, [None] * rows), f.type) for f in schema}, schema=schema)
        digest = hashlib.sha256("\n".join(sorted(columns["image_id"])).encode()).hexdigest()[:16]
        pq.write_table(table, os.path.join(output, "masks", f"part-{plan.run_id}-{digest}.parquet"), compression="zstd")


def job_argv(inputs: str, output: str) -> list[str]:
    return ["--input", inputs, "--output", output, "--model", MODEL, "--weights", "random", "--num-cpus", "2"]


def _measured(kind: str, inputs: str, output: str, results) -> None:
    """In a spawned process: import what the measurement needs, then time it and sample its memory."""
    from jobs.segment import main
    from pipeline.config import RunConfig
    from pipeline.io.output import table_totals
    from pipeline.io.sources import list_inputs
    from pipeline.io.storage import arrow_fs
    from pipeline.run import resume_set

    config = RunConfig(input=inputs, output=output, model=MODEL, weights="random")
    held = list_inputs(config) if kind == "resume_set" else None  # the listing the resume set gets
    fs, root = arrow_fs(output, config)
    work = {
        "listing": lambda: list_inputs(config),
        "resume_set": lambda: resume_set(fs, root, "bench", config, held),
        "noop_resume": lambda: main(job_argv(inputs, output)),
        "resume_1pct": lambda: main(job_argv(inputs, output)),
        "totals": lambda: table_totals(fs, root),
    }[kind]
    me, peak, stop = psutil.Process(), [0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], me.memory_info().rss)
            time.sleep(0.005)

    idle = me.memory_info().rss
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    work()
    seconds = time.perf_counter() - started
    stop.set()
    sampler.join()
    peak[0] = max(peak[0], me.memory_info().rss)
    results.put({"seconds": seconds, "peak_above_idle_bytes": peak[0] - idle, "idle_bytes": idle})


def measure(kind: str, inputs: str, output: str) -> dict:
    """One measurement in a fresh spawned process (``_measured``)."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=_measured, args=(kind, inputs, output, results))
    process.start()
    result = results.get()
    process.join()
    return result


def bookkeeping(workdir: str, sizes: list[int], log=print) -> dict:
    """Every measurement at each of ``sizes`` inputs; returns ``{N: {kind: {seconds, peak_above_idle_bytes}}}``.

    Args:
        workdir: scratch folder (the inputs are kept there between runs).
        sizes: numbers of inputs.
        log: called with one line per measurement.
    """
    from ..config import RunConfig

    base = os.path.abspath(os.path.join(workdir, "bookkeeping"))
    os.makedirs(base, exist_ok=True)
    results = {}
    for n in sizes:
        made = time.perf_counter()
        inputs = make_inputs(base, n)
        full, partial = os.path.join(base, f"out-{n}-all"), os.path.join(base, f"out-{n}-99")
        config = RunConfig(input=inputs, output=full, model=MODEL, weights="random")
        commit_table(inputs, full, n, n, config)
        log(f"N={n:,}: inputs and committed table made in {time.perf_counter() - made:.1f} s")
        results[n] = {}
        for kind in KINDS:
            if kind in ("resume_set", "resume_1pct"):  # each resume of 1% new starts from 99% committed
                commit_table(inputs, partial, n, n - n // 100, config.model_copy(update={"output": partial}))
            result = measure(kind, inputs, partial if kind in ("resume_set", "resume_1pct") else full)
            results[n][kind] = result
            log(f"N={n:,} {kind:<12} {result['seconds']:8.2f} s  +{result['peak_above_idle_bytes'] / MIB:7.0f} MiB")
    return results


def print_table(results: dict) -> None:
    """The results as a Markdown table: seconds and peak MiB above idle for each measurement."""
    print("| N | " + " | ".join(KINDS) + " |")
    print("| --- |" + " --- |" * len(KINDS))
    for n, row in results.items():
        cells = [f"{row[k]['seconds']:.2f} s, +{row[k]['peak_above_idle_bytes'] / MIB:.0f} MiB" for k in KINDS]
        print(f"| {n:,} | " + " | ".join(cells) + " |")
