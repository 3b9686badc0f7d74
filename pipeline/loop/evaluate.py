"""Score a segmentation run against ground truth with the FCN paper's metrics, summed over Ray Data.

Each batch of the masks table becomes one ``n*n`` confusion vector (a single ``np.bincount``); the
vectors are summed in the driver, so no mask ever travels there. Truth is either a Parquet dataset
joined on the image id, or a folder of PNG files matched by file stem to each row's ``source``.
The arithmetic (confusion counts, scores, the text table) is ``pipeline.loop.metrics``.
"""

from __future__ import annotations

import importlib.util
import io
import os

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray
from PIL import Image

from ..cluster import init_ray
from ..config import S3Settings
from ..io import schema
from ..io.output import list_parquet
from ..io.storage import arrow_fs, is_s3, local_path, storage_options
from .config import EvalConfig
from .metrics import confusion_vector, scores

__all__ = ["EvalConfig", "EvaluationError", "evaluate"]  # EvalConfig lives in loop.config, with the jobs' others

COUNTS = ("scored", "errors", "missing_truth", "size_mismatch", "unreadable", "scenes")
BATCH = 16  # masks per confusion vector: a batch's pixels are held twice as int64 for the one bincount


class EvaluationError(ValueError):
    """Inputs that cannot be scored; the message names the thing and what to do."""


def decode_mask(data: bytes) -> np.ndarray:
    """Class ids of a mask PNG as a 2-D array (a colour PNG's first channel).

    Args:
        data: the PNG bytes.
    """
    array = np.asarray(Image.open(io.BytesIO(data)))
    return array[..., 0] if array.ndim == 3 else array


def source_stem(source: str) -> str:
    """``.../part-0.parquet#images/scene_7.png`` and ``s3://b/scene_7.jpg`` both give ``scene_7``.

    Args:
        source: a masks row's ``source``.
    """
    name = source.rsplit("#", 1)[-1].rsplit("/", 1)[-1]
    return os.path.splitext(name)[0]


def confusion_batch(batch: pa.Table, n: int) -> dict[str, np.ndarray]:
    """One row per batch: its summed confusion vector and how many rows were scored or skipped and why.

    Args:
        batch: masks rows with ``status, mask_png`` and their ``truth_png`` (null when there is none).
        n: number of classes.
    """
    counts = dict.fromkeys(COUNTS, 0)
    trues, preds = [], []
    for status, pred_png, truth_png in zip(
        batch["status"].to_pylist(), batch["mask_png"].to_pylist(), batch["truth_png"].to_pylist(), strict=True
    ):
        if status != "ok":
            counts["errors"] += 1
            continue
        if pred_png is None:  # a scene's mask is a raster at mask_uri (tiles as rows): not scored here
            counts["scenes"] += 1
            continue
        if truth_png is None:
            counts["missing_truth"] += 1
            continue
        try:
            true, pred = decode_mask(truth_png), decode_mask(pred_png)
        except OSError:
            counts["unreadable"] += 1
            continue
        if true.shape != pred.shape:
            counts["size_mismatch"] += 1
            continue
        trues.append(true.ravel())
        preds.append(pred.ravel())
        counts["scored"] += 1
    empty = np.zeros(0, np.int64)
    true, pred = (np.concatenate(a) if a else empty for a in (trues, preds))
    return {"confusion": confusion_vector(true, pred, n)[None, :], **{k: np.array([v]) for k, v in counts.items()}}


def truth_from_parquet(batch: pa.Table, truth_column: str, id_column: str) -> pa.Table:
    """``image_id, truth_png`` from a truth table whose mask is binary PNG or a ``{bytes, path}`` struct.

    Args:
        batch: rows of the truth table.
        truth_column: column with the truth PNG.
        id_column: column matched against the masks table's ``image_id``.
    """
    column = batch[truth_column]
    if pa.types.is_struct(column.type):
        column = pc.struct_field(column, "bytes")
    return pa.table({"image_id": pc.cast(batch[id_column], pa.string()), "truth_png": column})


def truth_from_folder(batch: pa.Table, root: str, options: dict) -> pa.Table:
    """Attach ``truth_png``: the bytes of ``root/<stem of source>.png``, or null when there is none.

    Args:
        batch: masks rows with a ``source``.
        root: folder of the truth PNG files, local path or ``s3://`` URI.
        options: fsspec storage options for ``root``.
    """
    fs, base = fsspec.core.url_to_fs(root, **options)
    blobs = []
    for source in batch["source"].to_pylist():
        try:
            with fs.open(f"{base.rstrip('/')}/{source_stem(source)}.png", "rb") as f:
                blobs.append(f.read())
        except FileNotFoundError:
            blobs.append(None)
    return batch.append_column("truth_png", pa.array(blobs, pa.binary()))


def _masks_files(uri: str, config: S3Settings) -> tuple[list[str], object]:
    """The masks table's committed files: ``uri/masks/*.parquet``, or Parquet files right in ``uri``."""
    fs, path = arrow_fs(uri, config)
    for folder in (f"{path}/masks", path):
        files = [f for f in list_parquet(fs, folder) if "/_staging/" not in f and "/class_stats/" not in f]
        if files:
            return files, fs
    raise EvaluationError(f"--masks {uri}: no Parquet files there; pass a segmentation run's output folder")


def _truth_files(uri: str, config: S3Settings) -> tuple[list[str], object]:
    fs, path = arrow_fs(uri, config)
    return ([path] if path.endswith(".parquet") else list_parquet(fs, path)), fs


def class_names(files: list[str], fs, uri: str) -> list[str]:
    """Class names from the masks table's Parquet key-value metadata.

    Args:
        files: the masks table's files; the first one is read.
        fs: pyarrow filesystem of ``files``.
        uri: ``--masks`` as given, for the error message.
    """
    with fs.open_input_file(files[0]) as f:
        names = schema.class_names(schema.read_metadata(pq.read_schema(f).metadata))
    if names is None:
        raise EvaluationError(f"--masks {uri}: {files[0]} has no {schema.CLASS_NAMES_KEY} metadata")
    return names


def evaluate(config: EvalConfig) -> dict:
    """Score every ``ok`` row of the masks table against its truth mask; return metrics and counts.

    Args:
        config: what to score against what (see ``EvalConfig``).
    """
    masks_files, masks_fs = _masks_files(config.masks.rstrip("/"), config)
    names = class_names(masks_files, masks_fs, config.masks)
    init_ray(config.ray_address, config.num_cpus)
    columns = ["image_id", "source", "status", "mask_png"]
    rows = ray.data.read_parquet(masks_files, filesystem=masks_fs, columns=columns)
    truth_files, truth_fs = _truth_files(config.truth, config)
    layout = config.truth_format if config.truth_format != "auto" else "parquet" if truth_files else "png"
    if layout == "parquet":
        if not truth_files:
            raise EvaluationError(f"--truth {config.truth}: no Parquet files there")
        if importlib.util.find_spec("polars") is None:
            raise EvaluationError("a Parquet --truth is joined with Ray Data, which needs polars: pip install polars")
        kwargs = {"truth_column": config.truth_column, "id_column": config.id_column}
        truth = ray.data.read_parquet(truth_files, filesystem=truth_fs, columns=list(kwargs.values()))
        truth = truth.map_batches(truth_from_parquet, fn_kwargs=kwargs, batch_format="pyarrow")
        # a partition per masks file (about rows_per_file rows each), at most two per CPU
        partitions = max(1, min(len(masks_files), 2 * int(ray.cluster_resources().get("CPU", 1))))
        rows = rows.join(truth, "left_outer", partitions, on=("image_id",))
    else:
        uri = config.truth if is_s3(config.truth) else local_path(config.truth)
        kwargs = {"root": uri, "options": storage_options(config.truth, config)}
        rows = rows.map_batches(truth_from_folder, fn_kwargs=kwargs, batch_format="pyarrow", batch_size=BATCH)
    kwargs = {"n": len(names)}
    partial = rows.map_batches(confusion_batch, fn_kwargs=kwargs, batch_format="pyarrow", batch_size=BATCH)
    confusion, counts = np.zeros(len(names) ** 2, np.int64), dict.fromkeys(COUNTS, 0)
    for batch in partial.iter_batches(batch_size=None, batch_format="numpy"):
        confusion += batch["confusion"].sum(0)
        counts = {k: counts[k] + int(batch[k].sum()) for k in COUNTS}
    conf = confusion.reshape(len(names), len(names))
    return {**scores(conf, names), "counts": counts, "class_names": names, "confusion": conf.tolist()}
