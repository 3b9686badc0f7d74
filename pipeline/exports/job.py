"""One export: what the masks table holds that is not exported yet -> the users' formats, on Ray Data.

``worklist`` reads only the small columns of ``masks/`` and what ``exports/`` holds already; when
nothing is new, Ray never starts. Otherwise the masks files with work in them are read by Ray Data
and each batch is exported by ``export_batch`` (files committed one by one). Last, the STAC
collection and this export's COCO JSON document are written, and ``exports/_manifest.json`` rewritten.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field

import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ..config import ConfigError
from ..io import lease
from ..io.output import list_parquet
from ..io.schema import MODEL_KEY, RUN_ID_KEY, class_names, read_metadata
from ..io.storage import arrow_fs, fsspec_fs, s3_options, with_s3_defaults
from . import EXPORT_NEEDS_CRS, coco, ledger, stac
from .batch import COLUMNS, ExportJob, export_batch
from .config import ExportConfig
from .georef import file_stem
from .labels import dicom_skip

MAX_ERRORS = 200  # errors listed in the export record; the counts cover all
# summary key -> why a row is not exported in a format (never an error): what the summary prints
SKIPPED = {
    "skipped_no_crs": "no CRS",
    "skipped_not_dicom": "not DICOM",
    "skipped_in_parquet": "source inside a Parquet file",
    "skipped_scene": "a scene: its mask is the raster at mask_uri",
}


def skip_keys(fmt: str) -> tuple[str, ...]:
    """The ``SKIPPED`` keys that ``fmt``'s summary counts (every one, zero or not).

    Args:
        fmt: an export format (an ``EXPORT_NEEDS_CRS`` key).
    """
    if EXPORT_NEEDS_CRS[fmt]:
        return ("skipped_no_crs", "skipped_scene")
    return ("skipped_not_dicom", "skipped_in_parquet", "skipped_scene") if fmt == "dicom-seg" else ("skipped_scene",)


def skipped(fmt: str, crs: str | None, source: str, mask_uri: str | None = None) -> str | None:
    """Why a row is not exported in ``fmt`` (a ``SKIPPED`` key), from the masks table alone; None: export it.

    A source named like a DICOM file may still not be one: the export task reads it and may skip it too.

    Args:
        fmt: an export format (an ``EXPORT_NEEDS_CRS`` key).
        crs: the row's ``crs`` column.
        source: the row's ``source`` column.
        mask_uri: the row's ``mask_uri``: a scene's mask is a tiled raster (a COG where georeferenced) already,
            too large for these formats' one-piece writers.
    """
    if mask_uri:
        return "skipped_scene"
    if EXPORT_NEEDS_CRS[fmt]:
        return None if crs else "skipped_no_crs"
    return dicom_skip(source) if fmt == "dicom-seg" else None


@dataclass
class Worklist:
    """What the export has to do, from the masks table's small columns and the exports so far."""

    todo: dict[str, tuple[str, ...]] = field(default_factory=dict)  # image id -> formats still needed
    files: list[str] = field(default_factory=list)  # masks files holding those images
    counts: dict[str, Counter] = field(default_factory=dict)  # format -> already / a SKIPPED key
    rows: int = 0
    segmentation_errors: int = 0


def worklist(fs: pafs.FileSystem, root: str, masks: list[str], formats: list[str]) -> Worklist:
    """Which committed ok rows still need which format; rows ``skipped`` are counted, not exported."""
    done = {fmt: ledger.exported(fs, root, fmt) for fmt in formats}
    found = Worklist(counts={fmt: Counter() for fmt in formats})
    columns = ["image_id", "status", "crs", "source", "mask_uri"]
    for path in masks:
        names = pq.read_schema(path, filesystem=fs).names  # tables written before mask_uri lack it
        table = pq.read_table(path, columns=[c for c in columns if c in names], filesystem=fs)
        uris = table["mask_uri"].to_pylist() if "mask_uri" in names else [None] * table.num_rows
        found.rows += table.num_rows
        small = zip(*(table[c].to_pylist() for c in columns[:4]), uris, strict=True)
        for image_id, status, crs, source, mask_uri in small:
            if status != "ok":
                found.segmentation_errors += 1
                continue
            stem, needed = file_stem(image_id), []
            for fmt in formats:
                if stem in done[fmt]:
                    found.counts[fmt]["already"] += 1
                elif why := skipped(fmt, crs, source, mask_uri):
                    found.counts[fmt][why] += 1
                else:
                    needed.append(fmt)
            if needed:
                found.todo[image_id] = tuple(needed)
                if not found.files or found.files[-1] != path:
                    found.files.append(path)
    return found


def export(config: ExportConfig, run_id: str | None = None) -> dict:
    """Export what ``config.masks`` holds in ``config.to``; return this export's record (``exports/_manifest.json``).

    Raises:
        ConfigError: no masks table there, or another export holds ``exports/``.
    """
    config = with_s3_defaults(config)
    fs, root = arrow_fs(config.masks, config)
    masks = list_parquet(fs, f"{root}/masks")
    if not masks:
        raise ConfigError([f"--masks {config.masks}: no masks table (masks/*.parquet); give a segment run's --output"])
    run_id = run_id or "export-" + dt.datetime.now(dt.timezone.utc).strftime(
        "%Y%m%dT%H%M%SZ"
    ) + "-" + secrets.token_hex(3)
    try:
        with lease.hold(fsspec_fs(config.masks, config), f"{root}/exports", run_id, config.lease_seconds):
            return _export_holding_lease(config, fs, root, masks, run_id)
    except lease.LeaseHeld as exc:
        raise ConfigError([str(exc).replace("--output", "--masks")]) from None


def _export_holding_lease(config: ExportConfig, fs: pafs.FileSystem, root: str, masks: list[str], run_id: str) -> dict:
    started = time.time()
    fs.delete_dir_contents(f"{root}/exports/_staging", missing_dir_ok=True)  # a killed export's leftovers
    if config.mode == "overwrite":
        ledger.clear(fs, root, config.to)
    work = worklist(fs, root, masks, config.to)
    meta = read_metadata(pq.read_schema(masks[0], filesystem=fs).metadata)
    names = class_names(meta) or []
    results = []
    if work.todo:
        from ..cluster import init_ray

        init_ray(config.ray_address, config.num_cpus)  # only now: an export with nothing new never starts Ray
        job = ExportJob(fs, root, run_id, names, work.todo, config.min_area, config.simplify,
                        {k.encode(): v.encode() for k, v in meta.items()}, s3_options(config))  # fmt: skip
        results = _run(job, work.files, config.batch_size)
    if "stac" in config.to:
        update_collection(fs, root, _items(results, "stac"), names)
    record = summary(config, work, results, run_id, started)
    if "coco" in config.to:
        record["coco_json"] = write_coco(fs, root, run_id, _items(results, "coco"), names, meta)
    write_export_record(fs, root, run_id, record)
    fs.delete_dir_contents(f"{root}/exports/_staging", missing_dir_ok=True)
    return record


def _run(job: ExportJob, files: list[str], batch_size: int) -> list[dict]:
    import ray.data

    ds = ray.data.read_parquet(files, filesystem=job.fs, columns=COLUMNS, include_paths=True)
    exported = ds.map_batches(export_batch, fn_kwargs={"job": job}, batch_size=batch_size, batch_format="pyarrow")
    return exported.take_all()


def _items(results: list[dict], fmt: str) -> list[dict]:
    return [json.loads(r["item"]) for r in results if r["format"] == fmt and r["item"]]


def write_coco(
    fs: pafs.FileSystem, root: str, run_id: str, records: list[dict], names: list[str], meta: dict[str, str]
) -> str | None:
    """``exports/coco/_coco-<run_id>.json``: the images this export wrote to ``coco`` and their annotations.

    The leading ``_`` keeps Parquet readers of the folder (``pd.read_parquet("exports/coco")``) off it,
    as they keep off ``_metadata``; a JSON file among the part files would fail them.

    Args:
        fs: pyarrow filesystem of the output.
        root: the output folder inside ``fs``.
        run_id: this export's id.
        records: ``{"image": ..., "annotations": [...]}`` per image, as the export tasks return them.
        names: class names by class id (every class is a category).
        meta: the masks table's ``fcn.*`` metadata (model and segment run in the document's ``info``).

    Returns:
        The document's path inside the output, or None when this export wrote no image to ``coco``.
    """
    if not records:
        return None
    records = sorted(records, key=lambda r: r["image"]["image_id"])
    info = {"fcn_export_run_id": run_id, "fcn_model": meta.get(MODEL_KEY), "fcn_run_id": meta.get(RUN_ID_KEY)}
    document = coco.coco_document(
        [r["image"] for r in records], [a for r in records for a in r["annotations"]], names, info=info
    )
    path = f"exports/coco/_coco-{run_id}.json"
    ledger.commit(fs, root, run_id, f"{root}/{path}", json.dumps(document).encode())
    return path


def update_collection(fs: pafs.FileSystem, root: str, new_items: list[dict], names: list[str]) -> None:
    """Rewrite ``exports/stac/collection.json``: the previous one, this export's items, and items it missed.

    An item that a killed export committed after its last collection update is read back and linked.
    """
    path = f"{root}/exports/stac/collection.json"
    previous = ledger.read_json(fs, path)
    linked = {link["href"].rsplit("/", 1)[-1][: -len(".json")] for link in (previous or {}).get("links", [])
              if link.get("rel") == "item"}  # fmt: skip
    linked |= {i["_stem"] for i in new_items}
    for stem in sorted(ledger.exported(fs, root, "stac") - linked):
        item = ledger.read_json(fs, f"{ledger.folder(root, 'stac')}/{stem}.json")
        if item:
            new_items.append({**item, "_stem": stem})
    if new_items or previous is None:
        ledger.commit(fs, root, "collection", path, stac.dumps(stac.collection_dict(previous, new_items, names)))


def summary(config: ExportConfig, work: Worklist, results: list[dict], run_id: str, started: float) -> dict:
    """This export's record: counts per format (skips by reason, polygons, annotations), errors (the first
    ``MAX_ERRORS``), time. A row the task skipped (a source that is no DICOM file) counts with the worklist's skips."""
    formats = {}
    for fmt in config.to:
        mine = [r for r in results if r["format"] == fmt]
        skips = work.counts[fmt] + Counter(r["skipped"] for r in mine if r["skipped"])
        formats[fmt] = {
            "exported": sum(r["ok"] and not r["skipped"] for r in mine),
            "already": work.counts[fmt]["already"],
            **{key: skips[key] for key in skip_keys(fmt)},
            "errors": sum(not r["ok"] for r in mine),
        }
        if fmt == "geoparquet":
            formats[fmt]["polygons"] = sum(r["polygons"] or 0 for r in mine)
        if fmt == "coco":
            formats[fmt]["annotations"] = sum(r["annotations"] or 0 for r in mine)
    seconds = time.time() - started
    errors = [{k: r[k] for k in ("image_id", "format", "error")} for r in results if not r["ok"]]
    return {
        "run_id": run_id,
        "complete": True,
        "masks": config.masks,
        "formats": formats,
        "rows": work.rows,
        "segmentation_errors": work.segmentation_errors,
        "images": len(work.todo),
        "seconds": round(seconds, 3),
        "images_per_second": round(len(work.todo) / seconds, 3) if work.todo and seconds else None,
        "errors": errors[:MAX_ERRORS],
        "config": config.model_dump(),
    }


def write_export_record(fs: pafs.FileSystem, root: str, run_id: str, record: dict) -> None:
    """Add this export's record to ``exports/_manifest.json`` (staged, then moved into place).

    Args:
        fs: pyarrow filesystem of the output.
        root: the output folder inside ``fs``.
        run_id: this export's id.
        record: this export's record (``summary``).
    """
    path = f"{root}/exports/_manifest.json"
    records = ledger.read_json(fs, path) or {"runs": []}
    records = {"latest": record, "runs": [*records["runs"], record]}
    ledger.commit(fs, root, run_id, path, json.dumps(records, indent=2, default=str).encode())
