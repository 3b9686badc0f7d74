"""Scanning a run's masks table for the report: counts, class totals, a sample of rows and their source images.

One pass reads only the small columns of every row group; the masks of the sampled rows and the images
behind them are read afterwards, and only those.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..io.reading import image_column_problem
from ..io.schema import PARQUET_SOURCE, parquet_image_tag, read_metadata

MAX_ERRORS = 200  # error rows listed in the HTML; the count always covers all of them


class ReportError(ValueError):
    """The masks folder cannot be reported on; the message says why."""


@dataclass
class Summary:
    """What one pass over the small columns of the masks table learns, without decoding a mask."""

    files: list[str]
    meta: dict[str, str] = field(default_factory=dict)
    rows: int = 0
    ok: int = 0
    pixels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    sample: list[tuple[str, str, int, int, int]] = field(default_factory=list)  # source, image_id, file, group, row
    errors: list[tuple[str, str]] = field(default_factory=list)  # source, reason


def scan(fs, root: str, images: int) -> Summary:
    """Counts, per-class pixel totals, the first ``images`` ok rows in source order and the first error rows.

    Args:
        fs: fsspec filesystem of ``root``.
        root: the run's output folder (holding ``masks/``), as a path inside ``fs``.
        images: how many ok rows to pick for the contact sheet.
    """
    files = sorted(p for p in fs.find(f"{root}/masks") if p.endswith(".parquet"))
    if not files:
        raise ReportError(f"no Parquet files under {root}/masks: is --masks the output folder of a finished run?")
    summary = Summary(files)
    for index, path in enumerate(files):
        with fs.open(path, "rb") as f:
            parquet = pq.ParquetFile(f)
            if index == 0:
                raw = parquet.schema_arrow.metadata or {}
                summary.meta = read_metadata(raw)
            for group in range(parquet.num_row_groups):
                columns = ["image_id", "source", "status", "error", "class_pixels"]
                columns += ["mask_uri"] if "mask_uri" in parquet.schema_arrow.names else []
                table = parquet.read_row_group(group, columns=columns)
                failed = _add_row_group(summary, table, images, (index, group))
                if failed.any() and len(summary.errors) < MAX_ERRORS:
                    sources, reasons = table["source"].to_numpy(False), table["error"].to_numpy(False)
                    summary.errors += list(zip(sources[failed], reasons[failed], strict=True))[:MAX_ERRORS]
    summary.errors = summary.errors[:MAX_ERRORS]
    return summary


def _add_row_group(summary: Summary, table: pa.Table, images: int, where: tuple[int, int]) -> np.ndarray:
    ok = pc.fill_null(pc.equal(table["status"], "ok"), False)
    summary.rows += table.num_rows
    summary.ok += pc.sum(ok).as_py() or 0
    lists = pc.filter(table["class_pixels"], ok).combine_chunks()
    lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy().astype(np.int64)
    values = pc.list_flatten(lists).to_numpy()
    position = np.arange(len(values)) - np.repeat(np.cumsum(lengths) - lengths, lengths)  # class id of each value
    totals = np.bincount(position, weights=values).round().astype(np.int64)
    size = max(len(totals), len(summary.pixels))
    summary.pixels = np.pad(summary.pixels, (0, size - len(summary.pixels))) + np.pad(totals, (0, size - len(totals)))
    drawable = ok if "mask_uri" not in table.column_names else pc.and_(ok, pc.is_null(table["mask_uri"]))
    rows = pa.array(np.arange(table.num_rows))
    kept = table.select(["source", "image_id"]).append_column("row", rows).filter(drawable)  # scenes: no PNG
    first = kept.take(pc.sort_indices(kept, sort_keys=[("source", "ascending"), ("image_id", "ascending")])[:images])
    picked = zip(*(first[c].to_pylist() for c in ("source", "image_id", "row")), strict=True)
    summary.sample = heapq.nsmallest(images, summary.sample + [(s, i, *where, r) for s, i, r in picked])
    return ~ok.to_numpy(zero_copy_only=False)


def sample_rows(fs, summary: Summary) -> list[dict]:
    """The picked ok rows with their masks, reading only the row groups that hold them.

    Args:
        fs: fsspec filesystem of the masks table.
        summary: the scan that picked the rows.
    """
    wanted: dict[tuple[int, int], list[int]] = {}
    for *_, index, group, row in summary.sample:
        wanted.setdefault((index, group), []).append(row)
    found = {}
    for (index, group), rows in wanted.items():
        with fs.open(summary.files[index], "rb") as f:
            table = pq.ParquetFile(f).read_row_group(group, columns=["image_id", "source", "mask_png"])
        found.update({r["image_id"]: r for r in table.take(rows).to_pylist()})
    return [found[image_id] for _, image_id, *_ in summary.sample]


def locate(uri: str, images_root: str | None):
    """``(fs, path)`` of the first existing of: ``uri``'s trailing parts under ``images_root``, then ``uri``.

    Args:
        uri: where the file was read from when the run segmented it.
        images_root: folder to look in first, or ``None``; ``None`` is returned when nothing exists.
    """
    parts = uri.split("://", 1)[-1].strip("/").split("/")
    inside = images_root and ".." not in parts  # a source's ".." must not lead out of images_root
    tries = [f"{images_root.rstrip('/')}/{'/'.join(parts[k:])}" for k in range(len(parts))] if inside else []
    for candidate in [*tries, uri]:
        try:
            fs, path = fsspec.core.url_to_fs(candidate)
            if fs.isfile(path):
                return fs, path
        except Exception:  # unreachable store, missing credentials: this source is just not available
            continue
    return None


def parquet_images(rows: list[dict], image_column: str | None, images_root: str | None) -> dict[str, bytes]:
    """Image bytes of the ``file.parquet#inner`` sources, one scan per Parquet file, keyed by source.

    Args:
        rows: rows with a ``source``; other kinds of source are skipped.
        image_column: the run's image column; default the first binary or struct column.
        images_root: folder to look for the Parquet files in first (see ``locate``).
    """
    wanted: dict[str, dict[str, str]] = {}
    for row in rows:
        if match := PARQUET_SOURCE.match(row["source"]):
            wanted.setdefault(match[1], {})[match[2]] = row["source"]
    blobs = {}
    for file, tags in wanted.items():
        if (where := locate(file, images_root)) is None:
            continue
        try:
            with where[0].open(where[1], "rb") as f:
                blobs.update(_find_images(pq.ParquetFile(f), image_column, tags))
        except Exception:  # a corrupt or foreign Parquet file: its tiles show the mask alone
            continue
    return blobs


def _find_images(parquet: pq.ParquetFile, image_column: str | None, tags: dict[str, str]) -> dict[str, bytes]:
    names, types = parquet.schema_arrow.names, parquet.schema_arrow.types
    binary = [n for n, t in zip(names, types, strict=True) if pa.types.is_struct(t) or pa.types.is_binary(t)]
    column = image_column if image_column in names else next(iter(binary), None)
    if column and image_column_problem(parquet.schema_arrow, column):  # never read what could unpickle
        return {}
    found, tags, first = {}, dict(tags), 0
    for batch in parquet.iter_batches(columns=[column], batch_size=64) if column else []:
        values, paths = batch.column(0), [None] * batch.num_rows
        if pa.types.is_struct(values.type):  # Hugging Face style {bytes, path}, tagged as pipeline.io.sources does
            paths = pc.struct_field(values, "path").to_pylist() if "path" in values.type.names else paths
            values = pc.struct_field(values, "bytes")
        for row, (inner, blob) in enumerate(zip(paths, values.to_pylist(), strict=True), start=first):
            if (tag := parquet_image_tag(row, inner)) in tags:
                found[tags.pop(tag)] = blob
        first += batch.num_rows
        if not tags:
            break
    return found


def read_image(uri: str, images_root: str | None) -> bytes | None:
    """Bytes of a source image stored as its own file (see ``locate``), or ``None`` when it cannot be read.

    Args:
        uri: the row's ``source``; ``file.parquet#inner`` sources are left to ``parquet_images``.
        images_root: folder to look for the image in first (by its trailing path parts).
    """
    where = None if PARQUET_SOURCE.match(uri) else locate(uri, images_root)
    try:
        return where[0].cat_file(where[1]) if where else None
    except OSError:  # listed but unreadable (permissions, a flaky store): shown as missing
        return None
