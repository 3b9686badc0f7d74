"""Resume: what the output holds as committed, and taking committed rows back so their inputs are done again.

A row is taken back (``--retry-errors``, an input whose content changed) by rewriting the committed
files that hold it without it, before the run's work starts: at every moment a reader sees at most
one row per input, and after the run exactly one, the newer.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from .commit import TABLES, Layout, commit
from .output import list_parquet

COMMITTED = pa.schema([("image_id", pa.string()), ("status", pa.string()), ("source_version", pa.string())])


def committed_rows(fs: pafs.FileSystem, root: str) -> pa.Table:
    """``image_id, status, source_version`` of every row in ``masks/`` (null versions in older tables)."""
    masks = list_parquet(fs, Layout(fs, root).masks)
    if not masks:
        return COMMITTED.empty_table()
    return pads.dataset(masks, schema=COMMITTED, filesystem=fs, format="parquet").to_table()


def changed_ids(committed: pa.Table, ids: pa.Array, versions: pa.Array) -> pa.Array:
    """Committed image ids whose input is listed now with another version (a file replaced at its path).

    A multi-frame file's frames (``id#k``) go with their input's id; rows without a version are kept.
    Arrow kernels only (``index_in``, ``take``): no Python object per input is made.

    Args:
        committed: ``committed_rows``.
        ids: the listed inputs' image ids.
        versions: their versions, in the same order.
    """
    rows = committed.filter(pc.is_valid(committed["source_version"]))
    inputs = pc.replace_substring_regex(rows["image_id"], pattern="#.*$", replacement="")
    # listed ids are unique: each committed row's input found by position in the listing (a hash
    # lookup, like is_in), its version taken from there: lighter than a join, which copies both sides
    where = pc.index_in(inputs, value_set=ids)
    listed = pc.take(versions, where)  # null where the input is not listed now: not changed
    changed = pc.fill_null(pc.not_equal(rows["source_version"], listed), False)
    return rows["image_id"].filter(changed).combine_chunks().cast(pa.string())


def take_back(fs: pafs.FileSystem, root: str, run_id: str, ids: pa.Array) -> int:
    """Rewrite the committed files holding rows of ``ids`` without them; return the masks rows removed.

    Each class_stats file goes before its masks partner (staged, then moved over it; a file left
    empty is deleted): a run killed in between leaves the input committed with fewer statistics
    rows, and the next run, finding the same reason to redo it, takes both back again.

    Args:
        fs: filesystem of the output.
        root: output path inside ``fs``.
        run_id: this run's id (names its staging folder).
        ids: image ids whose committed rows are taken back.
    """
    if not len(ids):
        return 0
    removed, layout = 0, Layout(fs, root)
    for path in list_parquet(fs, layout.masks):
        held = pq.read_table(path, columns=["image_id"], filesystem=fs)["image_id"]
        hits = int(pc.sum(pc.is_in(held, value_set=ids)).as_py() or 0)
        if not hits:
            continue
        name = path.rsplit("/", 1)[-1]
        for folder in reversed(TABLES):  # class_stats first, then the masks file that commits
            _rewrite_without(fs, layout.table(folder, name), layout.staged(run_id, f"{folder}-{name}"), ids)
        removed += hits
    return removed


def _rewrite_without(fs: pafs.FileSystem, path: str, staged: str, ids: pa.Array) -> None:
    if not fs.get_file_info(path).is_file:
        return
    table = pq.read_table(path, filesystem=fs)  # keeps the schema's fcn.* key-value metadata
    kept = table.filter(pc.invert(pc.is_in(table["image_id"], value_set=ids)))
    if not kept.num_rows:
        fs.delete_file(path)
        return
    commit(fs, staged, path, kept)
