"""The output folder: modes (resume, overwrite, error), committed ids, and the run manifest."""

from __future__ import annotations

import json
from dataclasses import dataclass

import fsspec
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ..config import RunConfig
from .commit import TABLES, Layout, commit
from .schema import CLASS_NAMES_KEY, MODEL_KEY, WEIGHTS_KEY, RunInfo, read_metadata
from .storage import arrow_fs, forget_listings, fsspec_fs, is_s3

MANIFEST = "_manifest.json"


@dataclass(frozen=True)
class Output:
    """The output folder of a run, resolved once (in preflight): the URI as the user gave it, its ``Layout``
    (the pyarrow filesystem and root every committed file goes through) and the fsspec filesystem of the
    lease's conditional writes."""

    uri: str
    layout: Layout
    lease_fs: fsspec.AbstractFileSystem

    @classmethod
    def of(cls, config: RunConfig) -> Output:
        fs, root = arrow_fs(config.output, config)
        return cls(config.output, Layout(fs, root), fsspec_fs(config.output, config))

    @property
    def fs(self) -> pafs.FileSystem:
        return self.layout.fs

    @property
    def root(self) -> str:
        return self.layout.root

    @property
    def location(self) -> str:
        """Where rows point into the output (a scene's ``mask_uri``): an s3:// URI or an absolute path."""
        return self.uri if is_s3(self.uri) else self.root


class OutputError(ValueError):
    """The output cannot be used as asked; the message says what to do."""


def list_parquet(fs: pafs.FileSystem, folder: str) -> list[str]:
    """The Parquet files under ``folder``, listed fresh: files other processes committed since an
    earlier listing are found, and can be opened (no cached listing of the folder is left to deny them)."""
    forget_listings(fs, folder)
    selector = pafs.FileSelector(folder, recursive=True, allow_not_found=True)
    return sorted(i.path for i in fs.get_file_info(selector) if i.is_file and i.path.endswith(".parquet"))


def check_writable(fs: pafs.FileSystem, root: str) -> None:
    """The write check: write and delete a small file so an unwritable output fails before any work starts."""
    staging = Layout(fs, root).staging_root
    check = f"{staging}/.write-check"
    try:
        fs.create_dir(staging, recursive=True)
        with fs.open_output_stream(check) as f:
            f.write(b"ok")
        fs.delete_file(check)
    except Exception as exc:
        raise OutputError(f"--output {root}: cannot write there ({type(exc).__name__}: {exc})") from exc


def check_mode(fs: pafs.FileSystem, root: str, mode: str) -> None:
    """``--mode error`` refuses an output that already holds results."""
    layout = Layout(fs, root)
    has_results = list_parquet(fs, layout.masks) or fs.get_file_info(layout.manifest).is_file
    if mode == "error" and has_results:
        raise OutputError(f"--output {root} already holds results; use --mode resume or --mode overwrite")


def check_compatible(fs: pafs.FileSystem, root: str, mode: str, run: RunInfo) -> None:
    """``--mode resume`` adds rows to a table whose model, weights and class names must be this run's.

    Masks of another model or class list would give ``class_pixels`` of another length, or class ids
    that mean other things, in one table.

    Args:
        fs: filesystem of the output.
        root: output path inside ``fs``.
        mode: the run's ``--mode``; only ``resume`` is checked (``overwrite`` replaces the table).
        run: this run's provenance.
    """
    if mode != "resume":
        return
    keys = (MODEL_KEY, WEIGHTS_KEY, CLASS_NAMES_KEY)
    ours = tuple(read_metadata(run.metadata())[k] for k in keys)
    for path in list_parquet(fs, Layout(fs, root).masks):
        meta = read_metadata(pq.read_schema(path, filesystem=fs).metadata)
        theirs = tuple(meta.get(k, "") for k in keys)
        if theirs != ours:
            name = path.rsplit("/", 1)[-1]
            raise OutputError(
                f"--output {root} holds masks of {_provenance(keys, theirs)} ({name}); "
                f"this run has {_provenance(keys, ours)}. "
                "Resume only with the same model, weights and classes: use another --output, "
                "or --mode overwrite to replace the table"
            )


def _provenance(keys: tuple[str, ...], values: tuple[str, ...]) -> str:
    return ", ".join(f"{k.removeprefix('fcn.')} {v or '(random)'}" for k, v in zip(keys, values, strict=True))


def table_totals(fs: pafs.FileSystem, root: str) -> dict:
    """What the masks table holds as committed, all runs together: inputs (rows), ok and errors."""
    masks = list_parquet(fs, Layout(fs, root).masks)
    if not masks:
        return {"inputs": 0, "ok": 0, "errors": 0}
    # counted by the scanner a batch at a time (rows from the footers): the column is never held whole
    dataset = pads.dataset(masks, filesystem=fs, format="parquet")
    inputs, ok = dataset.count_rows(), dataset.count_rows(filter=pc.field("status") == "ok")
    return {"inputs": inputs, "ok": ok, "errors": inputs - ok}


def prepare(fs: pafs.FileSystem, root: str, mode: str) -> None:
    """Apply the mode: ``overwrite`` empties the output; otherwise leftovers of a killed run are cleared.

    Leftovers are staged files never committed, and class_stats files whose masks partner was
    never moved into place.
    """
    check_mode(fs, root, mode)
    layout = Layout(fs, root)
    if mode == "overwrite":
        for folder in (*map(layout.table, TABLES), layout.staging_root, layout.tiles_root, layout.scenes):
            fs.delete_dir_contents(folder, missing_dir_ok=True)
        if fs.get_file_info(layout.manifest).is_file:
            fs.delete_file(layout.manifest)
        return
    fs.delete_dir_contents(layout.staging_root, missing_dir_ok=True)
    fs.delete_dir_contents(layout.tiles_root, missing_dir_ok=True)  # a killed run's tiles: its scenes are redone
    _remove_orphan_scenes(layout)
    committed = {p.rsplit("/", 1)[-1] for p in list_parquet(fs, layout.masks)}
    for orphan in list_parquet(fs, layout.table("class_stats")):
        if orphan.rsplit("/", 1)[-1] not in committed:
            fs.delete_file(orphan)


def _remove_orphan_scenes(layout: Layout) -> None:
    """Delete scene rasters no committed row points to (a run killed between moving one and its row)."""
    fs = layout.fs
    selector = pafs.FileSelector(layout.scenes, allow_not_found=True)
    rasters = [i for i in fs.get_file_info(selector) if i.is_file]
    masks = list_parquet(fs, layout.masks)
    if not rasters:
        return
    ids = set()
    if masks:
        table = pads.dataset(masks, filesystem=fs, format="parquet").to_table(columns=["image_id"])
        ids = set(table["image_id"].to_pylist())
    for info in rasters:
        if info.base_name.removesuffix(".tif") not in ids:
            fs.delete_file(info.path)


def read_manifest(fs: pafs.FileSystem, root: str) -> dict:
    info = fs.get_file_info(Layout(fs, root).manifest)
    if not info.is_file:
        return {"runs": []}
    with fs.open_input_stream(info.path) as f:
        return json.loads(f.read())


def write_manifest(fs: pafs.FileSystem, root: str, run: dict) -> dict:
    """Add or replace this run's record and rewrite the manifest (staged, then moved into place).

    The top-level keys are the latest run's: a run that started and never finished says
    ``"complete": false`` there, whatever finished before it.
    """
    manifest = read_manifest(fs, root)
    runs = [*(r for r in manifest.get("runs", []) if r.get("run_id") != run["run_id"]), run]
    keys = ("run_id", "complete", "model", "weights", "random_weights", "warnings", "class_names", "counts", "totals")
    latest = {k: run.get(k) for k in keys}
    manifest = {**latest, "runs": runs}
    layout = Layout(fs, root)
    staged = f"{layout.staging_root}/{MANIFEST}.{run['run_id']}"
    commit(fs, staged, layout.manifest, json.dumps(manifest, indent=2, default=str).encode())
    return manifest
