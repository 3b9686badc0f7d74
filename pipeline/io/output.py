"""The output folder: modes (resume, overwrite, error), committed ids, and the run manifest."""

from __future__ import annotations

import json

import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from .schema import CLASS_NAMES_KEY, MODEL_KEY, WEIGHTS_KEY, RunInfo, read_metadata
from .storage import forget_listings

MANIFEST = "_manifest.json"
TABLES = ("masks", "class_stats")


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
    check = f"{root}/_staging/.write-check"
    try:
        fs.create_dir(f"{root}/_staging", recursive=True)
        with fs.open_output_stream(check) as f:
            f.write(b"ok")
        fs.delete_file(check)
    except Exception as exc:
        raise OutputError(f"--output {root}: cannot write there ({type(exc).__name__}: {exc})") from exc


def check_mode(fs: pafs.FileSystem, root: str, mode: str) -> None:
    """``--mode error`` refuses an output that already holds results."""
    has_results = list_parquet(fs, f"{root}/masks") or fs.get_file_info(f"{root}/{MANIFEST}").is_file
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
    for path in list_parquet(fs, f"{root}/masks"):
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
    masks = list_parquet(fs, f"{root}/masks")
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
    if mode == "overwrite":
        for folder in (*TABLES, "_staging", "_tiles", "scenes"):
            fs.delete_dir_contents(f"{root}/{folder}", missing_dir_ok=True)
        if fs.get_file_info(f"{root}/{MANIFEST}").is_file:
            fs.delete_file(f"{root}/{MANIFEST}")
        return
    fs.delete_dir_contents(f"{root}/_staging", missing_dir_ok=True)
    fs.delete_dir_contents(f"{root}/_tiles", missing_dir_ok=True)  # a killed run's tiles: its scenes are redone
    _remove_orphan_scenes(fs, root)
    committed = {p.rsplit("/", 1)[-1] for p in list_parquet(fs, f"{root}/masks")}
    for orphan in list_parquet(fs, f"{root}/class_stats"):
        if orphan.rsplit("/", 1)[-1] not in committed:
            fs.delete_file(orphan)


def _remove_orphan_scenes(fs: pafs.FileSystem, root: str) -> None:
    """Delete scene rasters no committed row points to (a run killed between moving one and its row)."""
    selector = pafs.FileSelector(f"{root}/scenes", allow_not_found=True)
    rasters = [i for i in fs.get_file_info(selector) if i.is_file]
    masks = list_parquet(fs, f"{root}/masks")
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
    info = fs.get_file_info(f"{root}/{MANIFEST}")
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
    staged = f"{root}/_staging/{MANIFEST}.{run['run_id']}"
    fs.create_dir(f"{root}/_staging", recursive=True)
    with fs.open_output_stream(staged) as f:
        f.write(json.dumps(manifest, indent=2, default=str).encode())
    fs.move(staged, f"{root}/{MANIFEST}")
    return manifest
