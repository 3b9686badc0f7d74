"""Sources: every input kind becomes rows of ``image_id, source, bytes, error``, streamed by Ray Data."""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import ray.data

from ..config import ConfigError, RunConfig
from .output import MANIFEST
from .schema import parquet_image_tag
from .storage import arrow_fs, fsspec_fs, is_s3, local_path

IMAGE_EXTENSIONS = ["jpg", "jpeg", "png", "tif", "tiff", "bmp", "gif", "webp", "dcm", "dicom"]
MANIFEST_SUFFIXES = (".txt", ".csv", ".lst")
URI_COLUMNS = ("uri", "path", "source", "url")
log = logging.getLogger(__name__)


def input_format(config: RunConfig) -> str:
    """The source kind of ``config.input``: files, parquet or manifest."""
    if config.input_format != "auto":
        return config.input_format
    lowered = config.input.lower().rstrip("/")
    if lowered.endswith(".parquet") or lowered.endswith(".pq"):
        return "parquet"
    if lowered.endswith(MANIFEST_SUFFIXES):
        return "manifest"
    fs = fsspec_fs(config.input, config)
    path = config.input if is_s3(config.input) else local_path(config.input)
    if fs.isdir(path) and fs.glob(path.rstrip("/") + "/*.parquet"):
        return "parquet"
    return "files"


def image_id(source: str) -> str:
    """Stable id of an input: the same source URI always gives the same id."""
    return hashlib.sha256(source.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Listing:
    """The image files of a folder source, listed once on the driver: path, id and content version.

    The version (size and modification time) tells a file replaced at the same path from the one
    whose row is committed, without reading it.
    """

    paths: list[str]
    ids: pa.Array
    versions: pa.Array


def list_inputs(config: RunConfig) -> Listing | None:
    """List a folder source (``None`` for Parquet and manifest sources, whose rows are found by reading)."""
    if input_format(config) != "files":
        return None
    fs, path = arrow_fs(config.input, config)
    scheme = "s3://" if is_s3(config.input) else ""
    infos = list_images(fs, path, outputs=[arrow_fs(config.output, config)[1]])
    if not infos:
        names = ", ".join(IMAGE_EXTENSIONS)
        raise ConfigError([f"--input {config.input}: no image files in it ({names}); check the path"])
    paths = [i.path for i in infos]
    versions = [f"size={i.size};mtime_ns={i.mtime_ns}" if i.mtime_ns is not None else f"size={i.size}" for i in infos]
    return Listing(paths, pa.array([image_id(scheme + p) for p in paths], pa.string()), pa.array(versions, pa.string()))


def read_inputs(config: RunConfig, skip: pa.Array | None = None, listing: Listing | None = None) -> ray.data.Dataset:
    """Stream the inputs of a run as ``image_id, source, source_version, bytes, error`` rows.

    Args:
        config: the run configuration (``input``, its format and S3 settings).
        skip: image ids already committed (resume). Their inputs are left out before their bytes are
            read where the id is known first (files, manifests); Parquet rows come with their bytes
            and are dropped right after reading.
        listing: the folder source's ``list_inputs``, when the caller listed it already.
    """
    skip = skip if skip is not None else pa.array([], pa.string())
    kind = input_format(config)
    fs, path = arrow_fs(config.input, config)
    scheme = "s3://" if is_s3(config.input) else ""
    if kind == "files":
        listing = listing or list_inputs(config)
        todo = pc.invert(pc.is_in(listing.ids, value_set=skip))
        items = pa.table({"path": listing.paths, "version": listing.versions}).filter(todo)
        if not items.num_rows:
            return ray.data.from_arrow(_inputs([], [], [], []))  # nothing new: an empty run
        # one block per decode batch rather than Ray's size estimate (which varies with the
        # cluster): each block reaches a single inference actor, so small blocks spread the work
        blocks = max(1, -(-items.num_rows // config.decode_batch_size))
        ds = ray.data.from_items(items.to_pylist(), override_num_blocks=blocks)
        ds = ds.map_batches(read_files, fn_kwargs={"config": config, "scheme": scheme}, batch_format="pyarrow")
    elif kind == "parquet":
        files = [i.path for i in list_files(fs, path, ["parquet", "pq"], outputs=[arrow_fs(config.output, config)[1]])]
        if not files:
            raise ConfigError([f"--input {config.input}: no Parquet files in it; check the path"])
        kwargs = {"config": config, "scheme": scheme}
        ds = ray.data.from_items([{"path": f} for f in files], override_num_blocks=len(files))
        ds = ds.map_batches(read_parquet_images, batch_size=1, fn_kwargs=kwargs, batch_format="pyarrow")
        if len(skip):
            ds = ds.map_batches(drop_committed, fn_kwargs={"committed": skip}, batch_format="pyarrow")
    else:
        ds = read_manifest(path, fs, config)
        ds = ds.map_batches(fetch_uris, fn_kwargs={"config": config, "committed": skip}, batch_format="pyarrow")
    return ds.limit(config.limit) if config.limit else ds


def list_images(fs: pafs.FileSystem, path: str, outputs: list[str] = ()) -> list[pafs.FileInfo]:
    """Image files below ``path`` (recursive), hidden files and our own outputs left out (``list_files``).

    Listed here rather than by ``read_binary_files(file_extensions=...)``, which drops names
    holding ``?`` (read as a URL query) and top-level names starting with ``_`` (``_DSC0001.JPG``).
    """
    return list_files(fs, path, IMAGE_EXTENSIONS, outputs)


def list_files(fs: pafs.FileSystem, path: str, extensions: list[str], outputs: list[str] = ()) -> list[pafs.FileInfo]:
    """Files below ``path`` (recursive) with one of ``extensions``, hidden files left out.

    An output folder inside the input (``outputs``, or any folder holding a run's ``_manifest.json``,
    with its ``report/`` and ``exports/``) is not input: it is left out and said so once.

    Args:
        fs: filesystem of ``path``.
        path: a folder or one file.
        extensions: file name extensions to take, without the dot, lower case.
        outputs: output folders (paths inside ``fs``) to leave out.
    """
    if (single := fs.get_file_info(path)).is_file:
        return [single]
    suffixes = {f".{e}" for e in extensions}
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    roots = {*(o.rstrip("/") for o in outputs), *(i.path.rsplit("/", 1)[0] for i in infos if i.base_name == MANIFEST)}
    found, skipped = [], Counter()
    for info in infos:
        wanted = info.is_file and os.path.splitext(info.base_name)[1].lower() in suffixes
        if not wanted or info.base_name.startswith("."):
            continue
        root = next((r for r in roots if info.path.startswith(r + "/")), None)
        if root is None:
            found.append(info)
        else:
            skipped[root] += 1
    for root, count in sorted(skipped.items()):
        log.warning("left out %d files under %s: it is an output folder of this job, not input", count, root)
    return sorted(found, key=lambda i: i.path)


def read_files(batch: pa.Table, config: RunConfig, scheme: str) -> pa.Table:
    """Read each listed file; one removed, forbidden or unreadable since listing becomes its error row."""
    fs, _ = arrow_fs(config.input, config)
    paths = batch["path"].to_pylist()
    blobs, errors = [], []
    for path in paths:
        try:
            with fs.open_input_stream(path) as f:
                blobs.append(f.read())
            errors.append(None)
        except FileNotFoundError:
            blobs.append(b"")
            errors.append(f"{scheme}{path} was listed but is gone (removed after listing); rerun to retry it")
        except OSError as exc:  # permissions, a 403 from S3, an I/O error
            blobs.append(b"")
            errors.append(f"cannot read {scheme}{path}: {type(exc).__name__}: {exc}; check its permissions")
    sources = [scheme + p for p in paths]
    return _inputs(sources, [image_id(s) for s in sources], blobs, errors, batch["version"])


def read_parquet_images(batch: pa.Table, config: RunConfig, scheme: str):
    """Rows of each Parquet file, one row group at a time, each tagged with its row number in the file.

    The row number makes every row's source (``file.parquet#row-17/inner/path.png``) and id unique
    even where a ``{bytes, path}`` column repeats its path, and stable while the file is unchanged.
    A file that cannot be read becomes one error row naming it.
    """
    fs, _ = arrow_fs(config.input, config)
    columns = [config.image_column] + ([config.id_column] if config.id_column else [])
    for file in batch["path"].to_pylist():
        try:
            parquet = pq.ParquetFile(fs.open_input_file(file))
            missing = [c for c in columns if c not in parquet.schema_arrow.names]
            if missing:
                raise ValueError(f"no column {', '.join(missing)} (see --image-column, --id-column)")
        except Exception as exc:  # a corrupt or foreign file: its error row, the others go on
            source = f"{scheme}{file}"
            yield _inputs([source], [image_id(source)], [b""], [f"cannot read Parquet {source}: {exc}"])
            continue
        first = 0
        for group in range(parquet.num_row_groups):
            table = parquet.read_row_group(group, columns=columns)
            yield from_parquet(table, first, f"{scheme}{file}", config.image_column, config.id_column)
            first += table.num_rows


def from_parquet(table: pa.Table, first: int, file: str, image_column: str, id_column: str | None) -> pa.Table:
    """``image_id, source, bytes, error`` of the rows of one row group that starts at row ``first``."""
    column = table[image_column]
    inner_paths = [None] * len(table)
    if pa.types.is_struct(column.type):  # Hugging Face style {bytes, path}
        if "path" in column.type.names:
            inner_paths = pc.struct_field(column, "path").to_pylist()
        column = pc.struct_field(column, "bytes")
    blobs = column.to_pylist()
    sources = [f"{file}#{parquet_image_tag(first + i, inner)}" for i, inner in enumerate(inner_paths)]
    ids = [str(v) for v in table[id_column].to_pylist()] if id_column else [image_id(s) for s in sources]
    return _inputs(sources, ids, blobs, [None if b is not None else "image bytes are null" for b in blobs])


def read_manifest(path: str, fs, config: RunConfig) -> ray.data.Dataset:
    lowered = path.lower()
    if lowered.endswith(".csv"):
        return ray.data.read_csv(path, filesystem=fs)
    if lowered.endswith((".txt", ".lst")):
        return ray.data.read_text(path, filesystem=fs, drop_empty_lines=True)
    return ray.data.read_parquet(path, filesystem=fs)


def fetch_uris(batch: pa.Table, config: RunConfig, committed: pa.Array) -> pa.Table:
    """Read each listed URI not yet committed; a missing or unreadable one becomes an error row, not a failed task."""
    column = next((c for c in (*URI_COLUMNS, "text") if c in batch.column_names), batch.column_names[0])
    listed = [str(u).strip() for u in batch[column].to_pylist()]
    todo = pc.invert(pc.is_in(pa.array([image_id(s) for s in listed], pa.string()), value_set=committed))
    sources = pa.array(listed, pa.string()).filter(todo).to_pylist()
    blobs, errors = [], []
    for uri in sources:
        try:
            fs = fsspec_fs(uri, config)
            with fs.open(uri if is_s3(uri) else local_path(uri), "rb") as f:
                blobs.append(f.read())
            errors.append(None)
        except FileNotFoundError:
            blobs.append(b"")
            errors.append(f"listed in the manifest but not found: {uri}")
        except OSError as exc:
            blobs.append(b"")
            errors.append(f"cannot read {uri}: {type(exc).__name__}: {exc}")
    return _inputs(sources, [image_id(s) for s in sources], blobs, errors)


def _inputs(sources, ids, blobs, errors, versions=None) -> pa.Table:
    return pa.table(
        {
            "image_id": pa.array(ids, pa.string()),
            "source": pa.array(sources, pa.string()),
            "source_version": versions if versions is not None else pa.nulls(len(ids), pa.string()),
            "bytes": blobs if isinstance(blobs, pa.ChunkedArray) else pa.array(blobs, pa.binary()),
            "error": pa.array(errors, pa.string()),
        }
    )


def drop_committed(batch: pa.Table, committed: pa.Array) -> pa.Table:
    """Resume: leave out rows whose image_id is already in ``masks/``."""
    return batch.filter(pc.invert(pc.is_in(batch["image_id"], value_set=committed)))
