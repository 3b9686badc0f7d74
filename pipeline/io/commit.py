"""The commit protocol in one module: where every file of an output lives (``Layout``), the one way a
file reaches its place (staged under ``_staging/<run id>/``, then moved over its target), the lease's
fence before a write task moves anything, and what a commit returns (``Committed``).

Every writer of the output goes through here: the sink's masks and class_stats files, scene tiles and
rasters (``scenes/stitch``), take-back rewrites (``io/resume``), the run manifest (``io/output``) and
the export files (``exports/ledger``). docs/exactly-once.md maps the whole flow.
"""

from __future__ import annotations

import posixpath
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from .lease import LEASE, fenced_out, read_lease

TABLES = ("masks", "class_stats")  # moved in reverse: class_stats first, then the masks file that commits


@dataclass(frozen=True)
class Layout:
    """Every path of one output folder (``root`` inside ``fs``); nothing else spells them.

    ``masks/``, ``class_stats/``: the committed tables (a masks file is the record that its rows are
    done); ``_staging/<run id>/``: files being written, which readers never glob; ``_tiles/<scene>/``:
    a gigapixel scene's tile rows until it is stitched; ``scenes/<id>.tif``: stitched rasters;
    ``_manifest.json``, ``_lease.json``; ``exports/`` with its own ``_staging/``.
    """

    fs: pafs.FileSystem
    root: str

    def table(self, folder: str, name: str | None = None) -> str:
        return f"{self.root}/{folder}" if name is None else f"{self.root}/{folder}/{name}"

    @property
    def masks(self) -> str:
        return self.table("masks")

    @property
    def manifest(self) -> str:
        return f"{self.root}/_manifest.json"

    @property
    def lease(self) -> str:
        return f"{self.root}/{LEASE}"

    @property
    def staging_root(self) -> str:
        return f"{self.root}/_staging"

    def staged(self, run_id: str, name: str) -> str:
        return f"{self.staging_root}/{run_id}/{name}"

    @property
    def tiles_root(self) -> str:
        return f"{self.root}/_tiles"

    def tiles(self, scene: str) -> str:
        return f"{self.tiles_root}/{scene}"

    @property
    def scenes(self) -> str:
        return f"{self.root}/scenes"

    @staticmethod
    def scene_raster(scene: str) -> str:
        """A stitched scene's raster, relative to the root (its ``mask_uri`` is the output URI + this)."""
        return f"scenes/{scene}.tif"

    @property
    def exports(self) -> str:
        return f"{self.root}/exports"

    def export_staged(self, run_id: str, target: str) -> str:
        return f"{self.exports}/_staging/{run_id}/{posixpath.basename(target)}"


@dataclass(frozen=True)
class Committed:
    """What one commit put in place: the files (relative to the root), its masks rows by status, the rows
    by inference node (for the manifest) and the scene tiles it set aside for stitching."""

    files: tuple[str, ...] = ()
    rows: int = 0
    ok: int = 0
    errors: int = 0
    nodes: dict[str, int] = field(default_factory=dict)
    tiles: int = 0


class LeaseLost(RuntimeError):
    """A write task of a run that no longer holds the output's lease; its rows were not committed."""


def stage(fs: pafs.FileSystem, staged: str, data: bytes | pa.Table | Path) -> str:
    """Write ``data`` at ``staged``, a path no reader looks at: bytes, a table (as zstd Parquet) or a
    local file (copied in 8 MiB pieces: a scene raster is never held whole)."""
    fs.create_dir(posixpath.dirname(staged), recursive=True)
    if isinstance(data, pa.Table):
        pq.write_table(data, staged, filesystem=fs, compression="zstd")
    elif isinstance(data, Path):
        with open(data, "rb") as src, fs.open_output_stream(staged) as dst:
            shutil.copyfileobj(src, dst, 8 * 1024**2)
    else:
        with fs.open_output_stream(staged) as f:
            f.write(data)
    return staged


def publish(fs: pafs.FileSystem, moves: Iterable[tuple[str, str]]) -> None:
    """Move each staged file over its target, in order: each move is the moment that file is committed."""
    for staged, target in moves:
        fs.create_dir(posixpath.dirname(target), recursive=True)
        fs.move(staged, target)


def commit(fs: pafs.FileSystem, staged: str, target: str, data: bytes | pa.Table | Path) -> None:
    """Stage then publish one file: a reader sees the old file or the whole new one, never a part."""
    publish(fs, [(stage(fs, staged, data), target)])


def fenced_publish(layout: Layout, run_id: str, moves: list[tuple[str, str]]) -> None:
    """``publish``, only while ``run_id`` holds the output's lease (``lease.fenced_out``): otherwise the
    staged files are deleted and the task fails, so its rows are left to the run that holds the lease."""
    if why := fenced_out(read_lease(layout.fs, layout.lease), run_id):
        for staged, _ in moves:
            layout.fs.delete_file(staged)
        raise LeaseLost(f"run {run_id} no longer commits into {layout.root}: {why}")
    publish(layout.fs, moves)
