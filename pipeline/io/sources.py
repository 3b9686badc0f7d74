"""Sources: every input kind becomes rows of ``image_id, source, source_version, bytes, error``, streamed by
Ray Data. Listing happens here, on the driver; reading the bytes in tasks is ``reading``."""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import ray.data

from ..config import ConfigError, RunConfig
from .output import MANIFEST
from .reading import fetch_uris, image_id, inputs_table, read_files, read_parquet_images
from .storage import arrow_fs, forget_listings, fsspec_fs, is_s3, local_path

IMAGE_EXTENSIONS = ["jpg", "jpeg", "png", "tif", "tiff", "svs", "btf", "bmp", "gif", "webp", "dcm", "dicom"]
URI_LIST_SUFFIXES = (".txt", ".csv", ".lst")
CHUNK = 65536  # listed files turned into Arrow arrays at a time
LISTED = pa.schema([("path", pa.string()), ("size", pa.int64()), ("mtime_ns", pa.int64())])
log = logging.getLogger(__name__)


def input_format(config: RunConfig) -> str:
    """The source kind of ``config.input``: files, parquet or manifest (a URI list: ``--input-format manifest``)."""
    if config.input_format != "auto":
        return config.input_format
    lowered = config.input.lower().rstrip("/")
    if lowered.endswith(".parquet") or lowered.endswith(".pq"):
        return "parquet"
    if lowered.endswith(URI_LIST_SUFFIXES):
        return "manifest"
    fs = fsspec_fs(config.input, config)
    path = config.input if is_s3(config.input) else local_path(config.input)
    if fs.isdir(path) and fs.glob(path.rstrip("/") + "/*.parquet"):
        return "parquet"
    return "files"


@dataclass(frozen=True)
class Listing:
    """The image files of a folder source, listed once on the driver, as one Arrow table.

    Columns ``path``, ``image_id``, ``version`` (size and modification time: tells a file replaced at the
    same path from the one whose row is committed, without reading it) and ``size``, sorted by path.
    No Python object per input is kept: about 150 bytes of Arrow buffers each.
    """

    table: pa.Table

    @property
    def ids(self) -> pa.Array:
        return self.table["image_id"].combine_chunks()

    @property
    def versions(self) -> pa.Array:
        return self.table["version"].combine_chunks()

    @property
    def paths(self) -> list[str]:
        """As Python strings: for small listings only (``filter`` first)."""
        return self.table["path"].to_pylist()

    @property
    def sizes(self) -> list[int]:
        return self.table["size"].to_pylist()

    def filter(self, mask: pa.Array) -> Listing:
        return Listing(self.table.filter(mask))


def list_inputs(config: RunConfig) -> Listing | None:
    """List a folder source (``None`` for Parquet and URI list sources, whose rows are found by reading)."""
    if input_format(config) != "files":
        return None
    fs, path = arrow_fs(config.input, config)
    scheme = "s3://" if is_s3(config.input) else ""
    files = list_images(fs, path, outputs=[arrow_fs(config.output, config)[1]])
    if not files.num_rows:
        names = ", ".join(IMAGE_EXTENSIONS)
        raise ConfigError([f"--input {config.input}: no image files in it ({names}); check the path"])
    size = pc.cast(files["size"], pa.string())
    versions = pc.coalesce(
        pc.binary_join_element_wise("size=", size, ";mtime_ns=", pc.cast(files["mtime_ns"], pa.string()), ""),
        pc.binary_join_element_wise("size=", size, ""),
    )
    # the id is a hash of the URI, which Arrow has no kernel for: hashed a chunk at a time
    paths = files["path"].combine_chunks()
    ids = pa.chunked_array(
        [
            pa.array([image_id(scheme + p) for p in paths.slice(i, CHUNK).to_pylist()], pa.string())
            for i in range(0, len(paths), CHUNK)
        ],
        pa.string(),
    )
    return Listing(pa.table({"path": paths, "image_id": ids, "version": versions, "size": files["size"]}))


def read_inputs(
    config: RunConfig, skip: pa.Array | None = None, listing: Listing | None = None, **task_args
) -> ray.data.Dataset:
    """Stream the inputs of a run as ``image_id, source, source_version, bytes, error`` rows.

    Args:
        config: the run configuration (``input``, its format and S3 settings).
        skip: image ids already committed (resume). Their inputs are left out before their bytes are
            read (files and URI lists by their URI; Parquet row groups by their ids or row numbers).
        listing: the folder source's ``list_inputs``, when the caller listed it already.
        task_args: Ray resources of the reading tasks (the same as the next stage's lets Ray fuse them).
    """
    skip = skip if skip is not None else pa.array([], pa.string())
    kind = input_format(config)
    fs, path = arrow_fs(config.input, config)
    scheme = "s3://" if is_s3(config.input) else ""
    if kind == "files":
        listing = listing or list_inputs(config)
        todo = pc.invert(pc.is_in(listing.table["image_id"], value_set=skip))
        items = listing.table.select(["path", "version"]).filter(todo).combine_chunks()
        if not items.num_rows:
            return ray.data.from_arrow(inputs_table([], [], [], []))  # nothing new: an empty run
        # one block per decode batch rather than Ray's size estimate (which varies with the
        # cluster): each block reaches a single inference actor, so small blocks spread the work
        size = config.decode_batch_size
        ds = ray.data.from_arrow([items.slice(i, size) for i in range(0, items.num_rows, size)])
        kwargs = {"config": config, "scheme": scheme}
        ds = ds.map_batches(read_files, fn_kwargs=kwargs, batch_format="pyarrow", **task_args)
    elif kind == "parquet":
        listed = list_files(fs, path, ["parquet", "pq"], outputs=[arrow_fs(config.output, config)[1]])
        files = listed["path"].to_pylist()  # one item per Parquet file, not per image
        if not files:
            raise ConfigError([f"--input {config.input}: no Parquet files in it; check the path"])
        kwargs = {"config": config, "scheme": scheme, "committed": skip}
        ds = ray.data.from_items([{"path": f} for f in files], override_num_blocks=len(files))
        ds = ds.map_batches(read_parquet_images, batch_size=1, fn_kwargs=kwargs, batch_format="pyarrow", **task_args)
    else:
        ds = read_uri_list(path, fs, config)
        kwargs = {"config": config, "committed": skip}
        ds = ds.map_batches(fetch_uris, fn_kwargs=kwargs, batch_format="pyarrow", **task_args)
    return ds.limit(config.limit) if config.limit else ds


def list_images(fs: pafs.FileSystem, path: str, outputs: list[str] = ()) -> pa.Table:
    """Image files below ``path`` (recursive), hidden files and our own outputs left out (``list_files``).

    Listed here rather than by ``read_binary_files(file_extensions=...)``, which drops names
    holding ``?`` (read as a URL query) and top-level names starting with ``_`` (``_DSC0001.JPG``).
    """
    return list_files(fs, path, IMAGE_EXTENSIONS, outputs)


def list_files(fs: pafs.FileSystem, path: str, extensions: list[str], outputs: list[str] = ()) -> pa.Table:
    """Files below ``path`` (recursive) with one of ``extensions``, hidden files left out: a table of
    ``path, size, mtime_ns`` sorted by path.

    Listed a folder at a time, top down, into Arrow arrays: the driver holds Python objects of one
    folder's entries at a time, not of the whole tree. An output folder inside the input (``outputs``, or
    any folder holding a run's ``_manifest.json``, with its ``report/`` and ``exports/``) is not input: it
    is left out and said so once.

    Args:
        fs: filesystem of ``path``.
        path: a folder or one file.
        extensions: file name extensions to take, without the dot, lower case.
        outputs: output folders (paths inside ``fs``) to leave out.
    """
    files = _Files()
    forget_listings(fs, path)  # s3fs answers a folder's listing from its cache: this run lists afresh
    if (single := fs.get_file_info(path)).is_file:
        files.add([single])
        return files.table()
    suffixes, roots = {f".{e}" for e in extensions}, {o.rstrip("/") for o in outputs}
    pending, skipped = [(path.rstrip("/"), None)], Counter()
    while pending:
        folder, root = pending.pop()
        infos = fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
        if root is None and (folder in roots or any(i.base_name == MANIFEST and i.is_file for i in infos)):
            root = folder
        pending += [(i.path, root) for i in infos if i.type == pafs.FileType.Directory]
        wanted = [
            i for i in infos
            if i.is_file and not i.base_name.startswith(".") and os.path.splitext(i.base_name)[1].lower() in suffixes
        ]  # fmt: skip
        if root is None:
            files.add(wanted)
        elif wanted:
            skipped[root] += len(wanted)
    for root, count in sorted(skipped.items()):
        log.warning("left out %d files under %s: it is an output folder of this job, not input", count, root)
    return files.table()


class _Files:
    """Listed files gathered into Arrow arrays a chunk at a time."""

    def __init__(self) -> None:
        self.chunks: list[pa.RecordBatch] = []
        self.paths, self.sizes, self.mtimes = [], [], []

    def add(self, infos: list[pafs.FileInfo]) -> None:
        for info in infos:
            self.paths.append(info.path)
            self.sizes.append(info.size)
            self.mtimes.append(info.mtime_ns)
        if len(self.paths) >= CHUNK:
            self._flush()

    def _flush(self) -> None:
        arrays = [
            pa.array(self.paths, pa.string()),
            pa.array(self.sizes, pa.int64()),
            pa.array(self.mtimes, pa.int64()),
        ]
        self.chunks.append(pa.RecordBatch.from_arrays(arrays, schema=LISTED))
        self.paths, self.sizes, self.mtimes = [], [], []

    def table(self) -> pa.Table:
        self._flush()
        return pa.Table.from_batches(self.chunks, LISTED).sort_by("path").combine_chunks()


def read_uri_list(path: str, fs, config: RunConfig) -> ray.data.Dataset:
    """The rows of a URI list: one URI per line of a ``.txt``/``.lst`` file, or a column of a ``.csv`` or
    Parquet file (``uri``, ``path``, ``source`` or ``url``, else the first); ``reading.fetch_uris`` reads them.

    Args:
        path: the URI list (a path inside ``fs``).
        fs: its filesystem.
        config: the run configuration.
    """
    lowered = path.lower()
    if lowered.endswith(".csv"):
        return ray.data.read_csv(path, filesystem=fs)
    if lowered.endswith((".txt", ".lst")):
        return ray.data.read_text(path, filesystem=fs, drop_empty_lines=True)
    return ray.data.read_parquet(path, filesystem=fs)
