"""What is exported already, and committing an export file: staged, then moved into place whole.

Per-image formats (``cog``, ``stac``, ``dicom-seg``) are exported once the image's file exists. A table
format (``geoparquet``, ``hf``, ``coco``) lists the image ids a file covers in its own key-value metadata
(``fcn.exported_ids``), so one atomic move commits the rows and the record that those images are done,
images without a single polygon or annotation included.
"""

from __future__ import annotations

import json
import posixpath

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ..io.commit import Layout
from ..io.commit import commit as staged_commit
from .georef import file_stem

EXPORTED_IDS_KEY = b"fcn.exported_ids"
SUFFIX = {"cog": ".tif", "stac": ".json", "dicom-seg": ".dcm"}
TABLES = ("geoparquet", "hf", "coco")  # their part files; coco's JSON documents are not the record


def folder(root: str, fmt: str) -> str:
    """Where ``fmt``'s files go under the output ``root`` (``exports/stac/items`` for STAC items)."""
    return f"{root}/exports/{fmt}/items" if fmt == "stac" else f"{root}/exports/{fmt}"


def _files(fs: pafs.FileSystem, path: str, suffix: str) -> list[str]:
    selector = pafs.FileSelector(path, recursive=True, allow_not_found=True)
    return sorted(i.path for i in fs.get_file_info(selector) if i.is_file and i.path.endswith(suffix))


def exported(fs: pafs.FileSystem, root: str, fmt: str) -> set[str]:
    """File stems (``file_stem(image_id)``) of the images exported in ``fmt`` already."""
    if fmt in TABLES:
        done: set[str] = set()
        for path in _files(fs, folder(root, fmt), ".parquet"):
            meta = pq.read_schema(path, filesystem=fs).metadata or {}
            done.update(file_stem(i) for i in json.loads(meta.get(EXPORTED_IDS_KEY, b"[]")))
        return done
    return {posixpath.basename(p)[: -len(SUFFIX[fmt])] for p in _files(fs, folder(root, fmt), SUFFIX[fmt])}


def commit(fs: pafs.FileSystem, root: str, run_id: str, target: str, data: bytes | pa.Table) -> None:
    """Write ``data`` (bytes, or a table as zstd Parquet) to ``target`` so a reader never sees part of it:
    staged under ``exports/_staging/<run id>/`` first, then moved over (``io/commit``)."""
    staged_commit(fs, Layout(fs, root).export_staged(run_id, target), target, data)


def clear(fs: pafs.FileSystem, root: str, formats: list[str]) -> None:
    """``--mode overwrite``: remove what earlier exports wrote in ``formats``."""
    for fmt in formats:
        fs.delete_dir_contents(f"{root}/exports/{fmt}", missing_dir_ok=True)


def read_json(fs: pafs.FileSystem, path: str) -> dict | None:
    if not fs.get_file_info(path).is_file:
        return None
    with fs.open_input_stream(path) as f:
        return json.loads(f.read())
