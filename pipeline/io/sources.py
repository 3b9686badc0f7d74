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
from .storage import arrow_fs, fsspec_fs, is_s3, local_path

IMAGE_EXTENSIONS = ["jpg", "jpeg", "png", "tif", "tiff", "svs", "btf", "bmp", "gif", "webp", "dcm", "dicom"]
URI_LIST_SUFFIXES = (".txt", ".csv", ".lst")
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
    """The image files of a folder source, listed once on the driver: path, id and content version.

    The version (size and modification time) tells a file replaced at the same path from the one
    whose row is committed, without reading it.
    """

    paths: list[str]
    ids: pa.Array
    versions: pa.Array
    sizes: list[int] | None = None


def list_inputs(config: RunConfig) -> Listing | None:
    """List a folder source (``None`` for Parquet and URI list sources, whose rows are found by reading)."""
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
    ids = pa.array([image_id(scheme + p) for p in paths], pa.string())
    return Listing(paths, ids, pa.array(versions, pa.string()), [i.size for i in infos])


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
        todo = pc.invert(pc.is_in(listing.ids, value_set=skip))
        items = pa.table({"path": listing.paths, "version": listing.versions}).filter(todo)
        if not items.num_rows:
            return ray.data.from_arrow(inputs_table([], [], [], []))  # nothing new: an empty run
        # one block per decode batch rather than Ray's size estimate (which varies with the
        # cluster): each block reaches a single inference actor, so small blocks spread the work
        blocks = max(1, -(-items.num_rows // config.decode_batch_size))
        ds = ray.data.from_items(items.to_pylist(), override_num_blocks=blocks)
        kwargs = {"config": config, "scheme": scheme}
        ds = ds.map_batches(read_files, fn_kwargs=kwargs, batch_format="pyarrow", **task_args)
    elif kind == "parquet":
        files = [i.path for i in list_files(fs, path, ["parquet", "pq"], outputs=[arrow_fs(config.output, config)[1]])]
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
