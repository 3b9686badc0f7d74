"""The export stage: a Ray Data batch of committed masks rows -> the files of every format asked for.

Each row is exported in the formats its image still lacks; a row that fails (a broken CRS, an
unreadable mask or DICOM source) becomes an error result and is tried again by the next export. Only
the GIS formats need the row's CRS; the label formats (``labels``) do not. The result rows (``RESULT``)
go back to the driver for the summary, the STAC collection and the COCO JSON document.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ..config import EXPORT_NEEDS_CRS
from . import cog, geoparquet, ledger, stac
from .georef import ExportError, Georef, file_stem, georef, read_mask
from .labels import LABEL_FORMATS, Labels
from .results import RESULT, reason, result

COLUMNS = ["image_id", "source", "frame", "status", "height", "width", "mask_png", "class_pixels", "crs",
           "geotransform", "model", "weights_sha256", "run_id"]  # fmt: skip


@dataclass(frozen=True)
class ExportJob:
    """What every export task needs: where to write, what to write, and which images still need what.

    Args:
        fs: pyarrow filesystem of the output.
        root: the output folder (holding ``masks/``) inside ``fs``.
        run_id: this export's id (names staged files and table parts).
        class_names: names by class id, from the masks table's metadata.
        todo: image id -> the formats it still needs.
        min_area: GeoParquet regions below this area (CRS units squared) are left out.
        simplify: GeoParquet simplification tolerance in CRS units (0: pixel outlines).
        metadata: ``fcn.*`` key-value metadata of the masks table, copied into table exports.
        source_options: fsspec options for ``s3://`` sources (``storage_options``), to read DICOM sources.
    """

    fs: pafs.FileSystem
    root: str
    run_id: str
    class_names: list[str]
    todo: dict[str, tuple[str, ...]]
    min_area: float = 0.0
    simplify: float = 0.0
    metadata: dict[bytes, bytes] = field(default_factory=dict)
    source_options: dict = field(default_factory=dict)


def export_batch(batch: pa.Table, job: ExportJob) -> pa.Table:
    """Export every row of ``batch`` in the formats ``job.todo`` names for it; one result row per (row, format)."""
    results: list[dict] = []
    polygons: dict[str, tuple[Georef, list[str], list[dict]]] = {}  # crs code -> (georef, ids, regions)
    confidence = _confidence(job, batch)
    labels = Labels(job)
    for row in batch.select([c for c in COLUMNS if c in batch.column_names]).to_pylist():
        wanted = job.todo.get(row["image_id"], ())
        if not wanted:  # exported already or skipped in every format (a masks file holds done and new rows)
            continue
        try:
            mask = read_mask(row["mask_png"], row["height"], row["width"])
        except Exception as exc:  # a broken row: an error of the summary, never a crashed export
            results += [result(row["image_id"], fmt, error=reason(exc)) for fmt in wanted]
            continue
        results += labels.add(row, mask, tuple(f for f in wanted if f in LABEL_FORMATS))
        gis = tuple(f for f in wanted if EXPORT_NEEDS_CRS[f])
        if not gis:
            continue
        try:
            geo = georef(row["crs"], row["geotransform"])
            if geo is None:  # job.worklist() skips these; a row is checked again here all the same
                raise ExportError("no CRS (the source is not georeferenced)")
        except Exception as exc:
            results += [result(row["image_id"], fmt, error=reason(exc)) for fmt in gis]
            continue
        results += _per_image(job, row, geo, mask, gis)
        if "geoparquet" in gis:
            try:
                found = geoparquet.regions(row["image_id"], mask, geo, job.class_names,
                                           confidence.get(row["image_id"], {}), min_area=job.min_area,
                                           simplify=job.simplify)  # fmt: skip
            except Exception as exc:
                results.append(result(row["image_id"], "geoparquet", error=reason(exc)))
                continue
            key = geo.code() or hashlib.sha256(geo.crs.to_wkt().encode()).hexdigest()[:12]
            group = polygons.setdefault(key, (geo, [], []))
            group[1].append(row["image_id"])
            group[2].extend(found)
            results.append(result(row["image_id"], "geoparquet", polygons=len(found)))
    for key, (geo, ids, found) in polygons.items():
        _write_geoparquet(job, key, geo, ids, found)
    results += labels.finish()
    return pa.Table.from_pylist(results, schema=RESULT)


def _per_image(job: ExportJob, row: dict, geo: Georef, mask, wanted: tuple[str, ...]) -> list[dict]:
    """The COG, then the STAC item that points at it (never an item without its COG)."""
    results, stem = [], file_stem(row["image_id"])
    if "cog" in wanted:
        try:
            tags = {"FCN_IMAGE_ID": row["image_id"], "FCN_MODEL": row["model"], "FCN_RUN_ID": row["run_id"]}
            data = cog.cog_bytes(mask, geo, job.class_names, tags)
            ledger.commit(job.fs, job.root, job.run_id, f"{ledger.folder(job.root, 'cog')}/{stem}.tif", data)
            results.append(result(row["image_id"], "cog"))
        except Exception as exc:
            return [result(row["image_id"], fmt, error=reason(exc)) for fmt in wanted if fmt != "geoparquet"]
    if "stac" in wanted:
        try:
            item = stac.stac_item(row, geo, stem, job.class_names)
            ledger.commit(
                job.fs, job.root, job.run_id, f"{ledger.folder(job.root, 'stac')}/{stem}.json", stac.dumps(item)
            )
            results.append(result(row["image_id"], "stac", item=json.dumps({**item, "_stem": stem})))
        except Exception as exc:
            results.append(result(row["image_id"], "stac", error=reason(exc)))
    return results


def _write_geoparquet(job: ExportJob, key: str, geo: Georef, ids: list[str], found: list[dict]) -> None:
    """One part file per CRS and batch, in a folder per CRS (a GeoParquet column has one CRS)."""
    metadata = {**job.metadata, ledger.EXPORTED_IDS_KEY: json.dumps(sorted(ids)).encode()}
    table = geoparquet.geoparquet_table(found, geo, metadata)
    # named by content: a retried task rewrites the same file instead of adding a twin
    digest = hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()[:16]
    crs_folder = key.replace(":", "-").lower()
    target = f"{ledger.folder(job.root, 'geoparquet')}/{crs_folder}/part-{job.run_id}-{digest}.parquet"
    ledger.commit(job.fs, job.root, job.run_id, target, table)


def _confidence(job: ExportJob, batch: pa.Table) -> dict[str, dict[int, float]]:
    """Mean confidence by image and class, from the class_stats files beside the batch's masks files."""
    if "path" not in batch.column_names or not any("geoparquet" in f for f in job.todo.values()):
        return {}
    found: dict[str, dict[int, float]] = {}
    ids = pc.unique(batch["image_id"])
    for path in pc.unique(batch["path"]).to_pylist():
        head, name = path.rsplit("/masks/", 1)
        stats = f"{head}/class_stats/{name}"
        try:
            table = pq.read_table(stats, filesystem=job.fs, columns=["image_id", "class_id", "mean_confidence"])
        except (OSError, pa.ArrowInvalid):  # statistics are a courtesy here: polygons go out without them
            continue
        table = table.filter(pc.is_in(table["image_id"], value_set=ids))
        for image_id, class_id, value in zip(*(table[c].to_pylist() for c in table.column_names), strict=True):
            found.setdefault(image_id, {})[class_id] = value
    return found
