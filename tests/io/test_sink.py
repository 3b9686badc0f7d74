"""The sink: what one write task commits, whatever blocks Ray hands it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pytest
from outputs import check_contract, read_tables
from ray.data.block import BlockAccessor

from pipeline.io.commit import LeaseLost
from pipeline.io.schema import RunInfo
from pipeline.io.sink import MaskTableSink
from pipeline.stages.postprocess import encode_png

CLASSES = ("sky", "land")


def block(ids: list[str], failed: set[str]) -> pa.Table:
    """Rows as the postprocess stage hands them on, made into a block the way Ray Data makes one."""
    ok = np.array([i not in failed for i in ids])
    png = encode_png(np.zeros((2, 3), np.uint8))
    batch = {
        "image_id": np.array(ids, dtype=object),
        "source": np.array([f"/in/{i}.png" for i in ids], dtype=object),
        "source_version": np.array([None] * len(ids), dtype=object),
        "frame": np.full(len(ids), -1, np.int32),
        "status": np.where(ok, "ok", "error").astype(object),
        "error": np.array([None if good else "corrupt" for good in ok], dtype=object),
        "height": np.where(ok, 2, 0).astype(np.int32),
        "width": np.where(ok, 3, 0).astype(np.int32),
        "mask_png": np.array([png if good else None for good in ok], dtype=object),
        "class_pixels": np.where(ok[:, None], [6, 0], 0).astype(np.int64),
        "class_confidence": np.full((len(ids), 2), 0.5),
        "crs": np.array([None] * len(ids), dtype=object),
        "geotransform": np.full((len(ids), 6), np.nan),
        "node": np.array(["n1"] * len(ids), dtype=object),
    }
    return BlockAccessor.batch_to_block(batch)


def test_one_write_of_blocks_whose_null_columns_differ(tmp_path):
    first, second = block(["a", "b"], failed=set()), block(["c", "d"], failed={"d"})
    assert first.schema.field("error").type == pa.null() and second.schema.field("error").type == pa.string()
    sink = MaskTableSink(pafs.LocalFileSystem(), str(tmp_path), RunInfo("run-1", "m", None, CLASSES), 1000)
    result = sink.write([first, second], ctx=None)
    assert (result.rows, result.ok, result.errors) == (4, 3, 1)
    masks, stats = read_tables(str(tmp_path))
    rows = check_contract(masks, stats, CLASSES)
    assert rows["/in/d.png"]["error"] == "corrupt" and rows["/in/a.png"]["status"] == "ok"


def dead_pid() -> int:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(gone.stdout)


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_write_task_commits_only_while_its_run_holds_the_lease(tmp_path, where, request):
    """The fence: rows of a run whose driver is gone, or whose lease another run took, never land."""
    if where == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        fs, root = pafs.S3FileSystem(endpoint_override=request.getfixturevalue("s3_endpoint")), f"{bucket}/out"
    else:
        fs, root = pafs.LocalFileSystem(), str(tmp_path)
    sink = MaskTableSink(fs, root, RunInfo("run-1", "m", None, CLASSES), 1000)
    assert sink.write([block(["a"], failed=set())], ctx=None).rows == 1  # no lease: a sink used alone

    def held(**record) -> None:
        lease = {"run_id": "run-1", "host": socket.gethostname(), "pid": os.getpid(), "expires": time.time() - 1}
        with fs.open_output_stream(f"{root}/_lease.json") as f:
            f.write(json.dumps({**lease, **record}).encode())

    held()  # its own, alive: committed, even past its expiry (a late renewal)
    assert sink.write([block(["b"], failed=set())], ctx=None).rows == 1
    for record, why in (({"pid": dead_pid()}, "is gone"), ({"run_id": "run-2"}, "run run-2 holds")):
        held(**record)
        with pytest.raises(LeaseLost, match=why):
            sink.write([block(["c"], failed=set())], ctx=None)
    masks, _ = read_tables(root, filesystem=fs)
    assert sorted(masks["image_id"].to_pylist()) == ["a", "b"]
    staged = fs.get_file_info(pafs.FileSelector(f"{root}/_staging", recursive=True, allow_not_found=True))
    assert [f.path for f in staged if f.type == pafs.FileType.File] == []
