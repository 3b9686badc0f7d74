"""One run: preflight, then read -> decode -> segment -> postprocess -> write as one Ray Data chain."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
import secrets
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import ray
import ray.data

import models

from .cluster import init_ray
from .config import RANDOM_WEIGHTS, ConfigError, RunConfig
from .io import lease
from .io.output import Output, check_compatible, check_mode, check_writable, prepare, table_totals, write_manifest
from .io.resume import changed_ids, committed_rows, take_back
from .io.schema import RunInfo
from .io.sink import MaskTableSink
from .io.sources import Listing, list_inputs, read_inputs
from .io.storage import fsspec_fs, is_s3, local_path, storage_options, with_s3_defaults
from .pool import actor_resources, with_batch_size
from .progress import Progress
from .scenes.read import (
    HEADER_BITS_PER_PIXEL,
    SUFFIXES,
    WindowReader,
    listed_scenes,
    scene_items,
    tile_count,
    tile_rows,
)
from .scenes.stitch import stitch_scenes
from .stages.decode import decode_batch
from .stages.postprocess import finish_batch
from .stages.replica import build_model
from .stages.segment import Segmenter

DECODE_MEMORY_BYTES = 768 * 1024**2  # measured: 450-600 MiB per decode task of 16 photos
# encoding asks for less CPU than writing, so Ray does not fuse it into the write tasks: those wait for
# --rows-per-file rows, and fused, every mask would wait there decoded (12 MB each at 12 MP) until then
FINISH_CPUS = 0.5  # in batches of --decode-batch-size: fewer tasks, less of Ray's per-task work


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    """What preflight established before Ray starts: the weights record and the class names."""

    weights: models.Weights
    class_names: tuple[str, ...]
    run_id: str
    output: Output


def preflight(config: RunConfig) -> Plan:
    """Check the model, weights, input and output; raise ``ConfigError`` before anything runs."""
    problems = []
    try:
        meta = build_model(config, _weights_options(config)).weights_meta
    except (models.WeightsError, ValueError) as exc:
        raise ConfigError([f"--weights: {exc}"]) from None
    names = meta.categories
    if config.classes:
        if len(config.classes) != meta.num_classes:
            problems.append(
                f"--classes: {len(config.classes)} names given but the model has {meta.num_classes} classes"
            )
        names = tuple(config.classes)
    problem = _input_problem(config)
    if problem:
        problems.append(problem)
    if not problems:  # the write check comes last: a refused run writes nothing
        try:
            output = Output.of(with_s3_defaults(config))
            check_mode(output.fs, output.root, config.mode)
            check_compatible(output.fs, output.root, config.mode, RunInfo("", config.model, meta.sha256, names))
            if held := lease.held_by_other(output.lease_fs, output.root, ""):
                raise lease.LeaseHeld(lease.describe(output.root, held))
            check_writable(output.fs, output.root)
        except Exception as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigError(problems)
    run_id = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)
    return Plan(weights=meta, class_names=names, run_id=run_id, output=output)


def _weights_options(config: RunConfig) -> dict:
    return storage_options(config.weights or "", config)


def _input_problem(config: RunConfig) -> str | None:
    """Why ``--input`` cannot be read, or ``None``; a quick look (few retries, short timeouts)."""
    uri = config.input
    fs = fsspec_fs(uri, config, quick=True)
    try:
        if fs.exists(uri if is_s3(uri) else local_path(uri)):
            return None
        return f"--input {uri}: not found (check the path, bucket and S3 settings)"
    except Exception as exc:
        return f"--input {uri}: cannot reach it ({type(exc).__name__}: {exc})"


def run(config: RunConfig, plan: Plan | None = None, progress: bool = False) -> dict:
    """Segment every input of ``config`` and return the manifest written for this run.

    Args:
        config: the run configuration.
        plan: what ``preflight`` established; computed here when not given.
        progress: draw a progress line on stdout (``pipeline.progress``).
    """
    config = with_s3_defaults(config)
    plan = plan or preflight(config)
    output = plan.output
    try:
        with lease.hold(output.lease_fs, output.root, plan.run_id, config.lease_seconds):
            return _run_holding_lease(config, plan, output.fs, output.root, progress)
    except lease.LeaseHeld as exc:
        raise ConfigError([str(exc)]) from None


def _run_holding_lease(config: RunConfig, plan: Plan, out_fs: pafs.FileSystem, root: str, progress: bool) -> dict:
    started = time.time()
    prepare(out_fs, root, config.mode)
    listing = list_inputs(config)
    committed, retried = resume_set(out_fs, root, plan.run_id, config, listing)
    # the manifest says at once that a run started and has not finished: a killed run stays "complete": false
    write_manifest(out_fs, root, {**run_record(config, plan, started, committed, [], None), "complete": False})
    results, segmented = [], None
    todo = None if listing is None else pc.sum(pc.invert(pc.is_in(listing.ids, value_set=committed))).as_py() or 0
    scenes = listed_scenes(config, scene_candidates(config, listing), committed) if todo else []
    if scenes:
        log.info("%d scenes read by window as tile rows", len(scenes))
    if todo is None or todo > 0:
        init_ray(config.ray_address, config.num_cpus)  # only now: a rerun with nothing new never starts Ray
        sink = MaskTableSink(out_fs, root, RunInfo(plan.run_id, config.model, plan.weights.sha256, plan.class_names),
                             config.rows_per_file)  # fmt: skip
        # scenes are cut for the largest pool, which their items (each taken whole by one actor) then bound
        largest = actor_resources(config)["compute"].max_size
        read_items = [item for scene in scenes for item in scene_items(scene, config, actors=largest)]
        images = None if todo is None else todo - len(scenes)
        resources = actor_resources(config, images, scene_items=len(read_items))
        config = with_batch_size(config, resources["num_gpus"])
        tiles = sum(tile_count(scene.info, config) for scene in scenes)
        shown = Progress(images, tiles) if progress else contextlib.nullcontext()
        with shown:
            segmented = segment_chain(
                config, plan, resources, committed, listing, scene_items=read_items, tally=getattr(shown, "tally", None)
            )
            segmented.write_datasink(sink)
        results = sink.results + stitch_scenes(out_fs, root, plan.output.location, sink.run)
    record = run_record(config, plan, started, committed, results, segmented)
    record["counts"]["retried"] = retried
    record["pool_started"] = segmented is not None
    record["totals"] = table_totals(out_fs, root)
    write_manifest(out_fs, root, record)
    if out_fs.get_file_info(staging := plan.output.layout.staged(plan.run_id, "")).type != pafs.FileType.NotFound:
        out_fs.delete_dir(staging)
    return record


def resume_set(
    out_fs: pafs.FileSystem, root: str, run_id: str, config: RunConfig, listing: Listing | None
) -> tuple[pa.Array, int]:
    """The image ids this run leaves out as committed, and how many committed rows it takes back to redo.

    Rows of inputs whose content changed since they were committed (a folder source's files, by size
    and modification time) and, with ``--retry-errors``, error rows are taken back first
    (``take_back``): their inputs are done again and the newer row is the only one.
    """
    if config.mode != "resume":
        return pa.array([], pa.string()), 0
    rows = committed_rows(out_fs, root)
    redo = pc.and_(pc.equal(rows["status"], "error"), config.retry_errors)
    if listing is not None:
        changed = pc.is_in(rows["image_id"], value_set=changed_ids(rows, listing.ids, listing.versions))
        redo = pc.or_(redo, changed)
    retried = take_back(out_fs, root, run_id, rows["image_id"].filter(redo).combine_chunks())
    return rows["image_id"].filter(pc.invert(redo)).combine_chunks(), retried


def scene_candidates(config: RunConfig, listing: Listing | None) -> Listing | None:
    """The listed files that may be scenes (``scenes.read.find_scenes``'s own test of name and size),
    picked by Arrow kernels so that only those become Python objects."""
    if listing is None or not (config.scene_pixels or config.level):
        return None
    paths = listing.table["path"]
    pattern = "(" + "|".join(re.escape(s) for s in SUFFIXES) + ")$"
    picked = pc.match_substring_regex(paths, pattern, ignore_case=True)
    if not config.level:
        large = pc.greater_equal(pc.multiply(listing.table["size"], 8), config.scene_pixels * HEADER_BITS_PER_PIXEL)
        picked = pc.and_(picked, large)
    return listing.filter(picked)


def segment_chain(
    config: RunConfig,
    plan: Plan,
    resources: dict,
    committed: pa.Array,
    listing: Listing | None = None,
    scene_items: list[dict] = (),
    tally=None,
) -> ray.data.Dataset:
    """read -> (drop committed) -> decode -> segment -> postprocess, as one chained Ray Data expression.

    Args:
        config: the run configuration, with its batch size set.
        plan: the weights record (its preferred resize) from preflight.
        resources: the inference pool's ``compute``, ``num_gpus`` and ``num_cpus`` (``actor_resources``).
        committed: image ids already in ``masks/``; their inputs are left out.
        listing: the folder source's files, when listed already (``list_inputs``).
        scene_items: read items of the scenes read by window (``scenes.read.scene_items``).
        tally: the progress line's ``Tally`` actor, or None.
    """
    resize = (config.resize if config.resize is not None else plan.weights.resize) or None
    in_actor = config.jpeg_decode == "actor"  # opt-in: torch's resize is not Pillow's (masks differ)
    decode_args = {"resize": resize, "max_pixels": config.max_pixels, "options": config.raster_options()}
    decode_args["jpeg_in_actor_below"] = config.tile_size if in_actor else None
    decode_args["reduced_jpeg"] = config.jpeg_reduced_decode
    # reading asks for decoding's memory, so that Ray fuses the two: the bytes go straight to the decoder
    # in one task instead of through the object store and a second task
    skip = (
        pa.concat_arrays([committed, pa.array([i["image_id"] for i in scene_items], pa.string())])
        if scene_items
        else committed
    )
    decoded = read_inputs(config, skip, listing, memory=DECODE_MEMORY_BYTES).map_batches(
        decode_batch,
        fn_kwargs=decode_args,
        batch_size=config.decode_batch_size,
        batch_format="numpy",
        # a memory request of its own (a decoded image needs it) also keeps Ray from
        # fusing decoding into the inference actors: it stays in CPU tasks beside them
        memory=DECODE_MEMORY_BYTES,
    )
    if scene_items:  # huge scenes: tile rows without pixels, spread over the pool; each actor reads its windows
        scheme = "s3://" if is_s3(config.input) else ""
        tiles = ray.data.from_items(list(scene_items), override_num_blocks=len(scene_items)).map_batches(
            tile_rows, fn_kwargs={"config": config, "scheme": scheme}, batch_size=1, batch_format="numpy"
        )
        decoded = decoded.union(tiles)
    # frames of a multi-frame file are committed as ``id#k``: resume drops them one by one
    frames = pc.filter(committed, pc.match_substring(committed, "#")) if len(committed) else committed
    if len(frames):
        decoded = decoded.map_batches(drop_committed_frames, fn_kwargs={"frames": frames}, batch_format="numpy")
    return decoded.map_batches(
        Segmenter,
        fn_constructor_kwargs={
            "config": config,
            "storage": _weights_options(config),
            "resize": resize,
            "windows": WindowReader(config) if scene_items else None,
        },  # fmt: skip
        batch_size=config.batch_size,
        batch_format="numpy",
        **resources,
    ).map_batches(finish_batch, fn_kwargs={"tally": tally}, batch_format="numpy", batch_size=config.decode_batch_size,
                  num_cpus=FINISH_CPUS)  # fmt: skip


def run_record(
    config: RunConfig, plan: Plan, started: float, committed: pa.Array, results: list[dict], ds: ray.data.Dataset | None
) -> dict:
    """This run's entry in the manifest: config, model and weights, counts, files, timings."""
    seconds = time.time() - started
    counts = {k: sum(getattr(r, k) for r in results) for k in ("rows", "ok", "errors")}
    counts["already_committed"] = len(committed)
    return {
        "run_id": plan.run_id,
        "complete": True,
        "started_at": dt.datetime.fromtimestamp(started, dt.timezone.utc).isoformat(),
        "seconds": round(seconds, 3),
        "images_per_second": round(counts["rows"] / seconds, 3) if seconds else None,
        "config": config.model_dump(),
        "model": config.model,
        "random_weights": config.random_weights,
        "warnings": [RANDOM_WEIGHTS] if config.random_weights else [],
        "weights": plan.weights.to_dict(),
        "class_names": list(plan.class_names),
        "counts": counts,
        "files": sorted(f for r in results for f in r.files),
        "stage_seconds": stage_seconds(ds) if ds is not None else {},
        "rows_by_inference_node": dict(sum((Counter(r.nodes) for r in results), Counter())),
    }


def stage_seconds(ds: ray.data.Dataset) -> dict[str, float]:
    """Task wall time summed per Ray Data operator: where the run's time went."""
    try:
        pending, operators = [ds.get_stats_summary()], []
        while pending:  # a written dataset keeps the earlier operators in its parents
            summary = pending.pop()
            operators += summary.operators_stats
            pending += summary.parents
    except Exception:  # a developer API: never let statistics fail a finished run
        return {}
    return {op.operator_name: round(op.wall_time.sum, 3) for op in operators if op.wall_time}


def drop_committed_frames(batch: dict[str, np.ndarray], frames: pa.Array) -> dict[str, np.ndarray]:
    """Resume of multi-frame files: leave out decoded frames whose ``id#k`` is already in masks/."""
    keep = ~np.isin(batch["image_id"].astype(str), frames.to_numpy(zero_copy_only=False).astype(str))
    return {name: column[keep] for name, column in batch.items()}
