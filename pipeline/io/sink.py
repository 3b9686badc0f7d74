"""The masks and class_stats tables, written together by one Ray Datasink: stage, then commit."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
from ray.data import Datasink
from ray.data.block import BlockAccessor

from ..grid import TileRow, is_tile
from ..probe import probe
from ..rows import reasons, strings
from .areas import pixel_areas
from .commit import Committed, Layout, fenced_publish, stage
from .schema import MASKS_SCHEMA, STATS_SCHEMA, RunInfo


def masks_table(batch: dict[str, np.ndarray], run: RunInfo) -> pa.Table:
    ok = batch["status"] == "ok"
    n = len(ok)
    pixels = [list(map(int, row)) if good else None for row, good in zip(batch["class_pixels"], ok, strict=True)]
    columns = {
        "image_id": batch["image_id"].tolist(),
        "source": batch["source"].tolist(),
        "source_version": strings(batch["source_version"]).tolist(),
        "frame": pa.array(batch["frame"], pa.int32(), mask=batch["frame"] < 0),
        "status": batch["status"].tolist(),
        "error": reasons(batch["error"]).tolist(),
        "height": pa.array(batch["height"], pa.int32(), mask=~ok),
        "width": pa.array(batch["width"], pa.int32(), mask=~ok),
        "mask_png": [m if good else None for m, good in zip(batch["mask_png"], ok, strict=True)],
        "mask_uri": strings(batch["mask_uri"]).tolist() if "mask_uri" in batch else [None] * n,
        "class_pixels": pixels,
        "crs": strings(batch["crs"]).tolist(),
        "geotransform": [None if np.isnan(g).any() else g.tolist() for g in np.asarray(batch["geotransform"], float)],
        "model": [run.model] * n,
        "weights_sha256": [run.weights_sha256] * n,
        "run_id": [run.run_id] * n,
    }
    return pa.table(columns, schema=MASKS_SCHEMA.with_metadata(run.metadata()))


def class_stats_table(batch: dict[str, np.ndarray], run: RunInfo) -> pa.Table:
    """Long form: one row per (ok image, class present), vectorised."""
    ok = batch["status"] == "ok"
    pixels = np.asarray(batch["class_pixels"], np.int64) * ok[:, None]
    rows, classes = np.nonzero(pixels)
    totals = pixels.sum(axis=1)
    names = np.asarray(run.class_names, dtype=object)
    areas, units = pixel_areas(batch)
    columns = {
        "image_id": batch["image_id"][rows].tolist(),
        "class_id": classes.astype(np.int32),
        "class_name": names[classes].tolist(),
        "pixels": pixels[rows, classes],
        "fraction": pixels[rows, classes] / totals[rows],
        "mean_confidence": np.asarray(batch["class_confidence"], np.float64)[rows, classes],
        "area": pa.array(pixels[rows, classes] * areas[rows], pa.float64(), mask=np.isnan(areas[rows])),
        "area_unit": [units[r] for r in rows],
    }
    return pa.table(columns, schema=STATS_SCHEMA.with_metadata(run.metadata()))


class MaskTableSink(Datasink[Committed]):
    """Writes each write task's rows as a masks file and a class_stats file of the same name.

    Both are first written under ``_staging/`` (which readers never glob), then moved
    into ``class_stats/`` and last ``masks/`` (``io/commit``): a file is either complete where
    readers look or absent, and a masks file is the record that its images are committed.

    Args:
        fs: pyarrow filesystem of the output.
        root: output path inside ``fs``.
        run: provenance of this run.
        rows_per_file: target rows per Parquet file.
    """

    def __init__(self, fs: pafs.FileSystem, root: str, run: RunInfo, rows_per_file: int) -> None:
        self.layout, self.run, self.rows_per_file = Layout(fs, root), run, rows_per_file
        self.results: list[Committed] = []

    def on_write_complete(self, write_result) -> None:
        # runs on the driver: keep what each write task committed, for the manifest
        self.results = [r for r in write_result.write_returns if r]

    @property
    def min_rows_per_write(self) -> int:
        return self.rows_per_file

    def write(self, blocks: Iterable, ctx) -> Committed:
        parts = [BlockAccessor.for_block(b).to_arrow() for b in blocks]
        parts = [p for p in parts if p.num_rows]
        if not parts:
            return Committed()
        # a column that is all null in one block is typed null there and string (or list) in the
        # next: promote instead of refusing the write
        table = pa.concat_tables(parts, promote_options="permissive")
        with probe("write", table.num_rows):
            return self.commit(BlockAccessor.for_block(table).to_batch_format("numpy"))

    def commit(self, batch: dict[str, np.ndarray]) -> Committed:
        """Stage both tables of ``batch``, then move them into place (class_stats first, masks last).

        Tile rows of scenes (``tile`` set) go to ``_tiles/`` instead, to be stitched (``scenes/stitch``).
        """
        tiles = 0
        if "tile" in batch and (is_tiles := is_tile(batch["tile"])).any():
            tiles = commit_tiles(self.layout, self.run.run_id, {k: v[is_tiles] for k, v in batch.items()})
            batch = {k: v[~is_tiles] for k, v in batch.items()}
            if not len(batch["image_id"]):
                return Committed(tiles=tiles)
        masks, stats = masks_table(batch, self.run), class_stats_table(batch, self.run)
        # named by content: a retried write task rewrites the same file instead of adding a twin
        digest = hashlib.sha256("\n".join(sorted(batch["image_id"].tolist())).encode()).hexdigest()[:16]
        name = f"part-{self.run.run_id}-{digest}.parquet"
        moves = [
            (stage(self.layout.fs, self.layout.staged(self.run.run_id, f"{folder}-{name}"), table),
             self.layout.table(folder, name))
            for table, folder in ((stats, "class_stats"), (masks, "masks"))
        ]  # fmt: skip
        fenced_publish(self.layout, self.run.run_id, moves)
        ok = int((batch["status"] == "ok").sum())
        nodes, counts = np.unique(batch["node"].astype(str), return_counts=True)
        return Committed(
            files=(f"masks/{name}", f"class_stats/{name}"),
            rows=masks.num_rows,
            ok=ok,
            errors=masks.num_rows - ok,
            nodes=dict(zip(nodes.tolist(), counts.tolist(), strict=True)),
            tiles=tiles,
        )


TILES_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),  # the scene's
        ("source", pa.string()),
        ("source_version", pa.string()),
        ("crs", pa.string()),
        ("geotransform", pa.list_(pa.float64())),
        ("error", pa.string()),
        ("tile", pa.list_(pa.int64())),  # grid.TILE_FIELDS
        ("mask_png", pa.binary()),  # the tile's window; 255 outside the region it owns
        ("class_pixels", pa.list_(pa.int64())),
        ("confidence_sum", pa.list_(pa.float64())),
    ]
)


def commit_tiles(layout: Layout, run_id: str, batch: dict[str, np.ndarray]) -> int:
    """Write tile rows under ``_tiles/<scene id>/`` (staged, then moved; named by content); return how many."""
    errors = reasons(batch["error"])
    pixels = np.asarray(batch["class_pixels"], np.int64)
    sums = np.nan_to_num(np.asarray(batch["class_confidence"], np.float64)) * pixels
    table = pa.table(
        {
            "image_id": batch["image_id"].tolist(),
            "source": batch["source"].tolist(),
            "source_version": strings(batch["source_version"]).tolist(),
            "crs": strings(batch["crs"]).tolist(),
            "geotransform": [
                None if np.isnan(g).any() else g.tolist() for g in np.asarray(batch["geotransform"], float)
            ],
            "error": errors.tolist(),
            "tile": np.asarray(batch["tile"], np.int64).tolist(),
            "mask_png": [m if e is None else None for m, e in zip(batch["mask_png"], errors, strict=True)],
            "class_pixels": pixels.tolist(),
            "confidence_sum": sums.tolist(),
        },
        schema=TILES_SCHEMA,
    )
    for scene in np.unique(batch["image_id"].astype(str)):
        part = table.filter(pc.equal(table["image_id"], scene))
        index = sorted(TileRow.from_vector(t).index for t in part["tile"].to_pylist())
        digest = hashlib.sha256(",".join(map(str, index)).encode()).hexdigest()[:16]
        staged = stage(layout.fs, layout.staged(run_id, f"tiles-{scene}-{digest}.parquet"), part)
        fenced_publish(layout, run_id, [(staged, f"{layout.tiles(scene)}/part-{digest}.parquet")])
    return table.num_rows
