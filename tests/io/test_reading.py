"""Reading inputs in tasks: every failure is that input's error row, and no input is read past --max-bytes."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.dataset as pads
from imagefiles import encode, rgb
from PIL import Image

from pipeline.config import RunConfig
from pipeline.io.reading import fetch_uris, image_id, read_files, read_parquet_images


def config(tmp_path, **extra) -> RunConfig:
    return RunConfig(input=str(tmp_path), output=str(tmp_path / "out"), weights="random", **extra)


def test_uri_list_uris_of_any_protocol_read_at_once_each_failure_its_own_row(tmp_path, http_root):
    www, url = http_root
    png = encode(Image.fromarray(rgb(20, 30, 0)), "PNG")
    (www / "a.png").write_bytes(png)
    (tmp_path / "local.png").write_bytes(png)
    (www / "big.png").write_bytes(b"x" * 5000)
    uris = [f"{url}/a.png", str(tmp_path / "local.png"), f"{url}/missing.png", "/dev/zero",
            "nosuchproto://bucket/x.png", f"{url}/big.png"]  # fmt: skip
    out = fetch_uris(pa.table({"uri": uris}), config(tmp_path, max_bytes=4096), pa.array([image_id(uris[1])]))
    rows = {r["source"]: r for r in out.to_pylist()}
    assert str(tmp_path / "local.png") not in rows  # committed: never read
    assert rows[uris[0]]["bytes"] == png and rows[uris[0]]["error"] is None
    assert "not found" in rows[uris[2]]["error"] or "404" in rows[uris[2]]["error"]
    assert "larger than --max-bytes 4096" in rows["/dev/zero"]["error"]  # endless, read no further
    assert "cannot read nosuchproto://" in rows[uris[4]]["error"]
    assert "larger than --max-bytes" in rows[uris[5]]["error"]
    assert [r["image_id"] for r in out.to_pylist()] == [image_id(u) for u in rows]


def test_listed_files_above_max_bytes_are_error_rows(tmp_path):
    (tmp_path / "small.png").write_bytes(b"s" * 10)
    (tmp_path / "large.png").write_bytes(b"l" * 11)
    paths = [str(tmp_path / "small.png"), str(tmp_path / "large.png")]
    out = read_files(pa.table({"path": paths, "version": ["v1", "v2"]}), config(tmp_path, max_bytes=10), "")
    small, large = out.to_pylist()
    assert small["bytes"] == b"s" * 10 and small["error"] is None and small["source_version"] == "v1"
    assert large["bytes"] == b"" and "larger than --max-bytes 10; raise --max-bytes" in large["error"]


class Payload:
    """What an attacker's Parquet file holds: unpickling it runs code."""

    def __reduce__(self):
        return (exec, ("import builtins; builtins.UNPICKLED = True",))


def test_parquet_columns_that_would_unpickle_are_refused_unread(tmp_path):
    import builtins

    import pyarrow.parquet as pq
    from ray.data._internal.object_extensions.arrow import ArrowPythonObjectArray

    evil = pa.table({"image": ArrowPythonObjectArray.from_objects([Payload()]), "key": ["k0"]})
    pq.write_table(evil, tmp_path / "evil.parquet")
    ids = pa.array([b"png bytes"])  # a plain file beside it, with an id column of another forbidden type
    pq.write_table(pa.table({"image": ids, "key": ArrowPythonObjectArray.from_objects([1])}), tmp_path / "ids.parquet")
    paths = [str(tmp_path / "evil.parquet"), str(tmp_path / "ids.parquet")]
    rows = [
        r
        for table in read_parquet_images(pa.table({"path": paths}), config(tmp_path, id_column="key"), "")
        for r in table.to_pylist()
    ]
    assert not hasattr(builtins, "UNPICKLED")
    assert "column image is extension<ray.data.arrow_pickled_object" in rows[0]["error"]
    assert "expected image bytes (binary) or a {bytes, path} struct" in rows[0]["error"]
    assert "column key is extension<ray.data.arrow_pickled_object" in rows[1]["error"]


def test_an_s3_object_that_answers_403_is_its_error_row(tmp_path, s3_bucket, s3_endpoint, ray_local):
    import boto3

    from jobs.segment import main
    from pipeline.testing.chaos import FlakyS3Proxy

    s3 = boto3.client("s3")
    for name in ("a.png", "secret.png", "b.png"):
        s3.put_object(Bucket=s3_bucket, Key=f"images/{name}", Body=encode(Image.fromarray(rgb(20, 24, 0)), "PNG"))
    with FlakyS3Proxy(s3_endpoint, every=0, forbidden=("/secret.png",)) as proxy:
        argv = ["--input", f"s3://{s3_bucket}/images/", "--output", str(tmp_path / "out"), "--weights", "random"]
        assert main([*argv, "--s3-endpoint-url", proxy.url, "--actors-max", "1"]) == 0
        assert proxy.counts["forbidden"] > 0
    rows = {r["source"]: r for r in pads.dataset(str(tmp_path / "out" / "masks")).to_table().to_pylist()}
    secret = rows[f"s3://{s3_bucket}/images/secret.png"]
    assert secret["status"] == "error" and "cannot read" in secret["error"] and "permissions" in secret["error"]
    assert [rows[f"s3://{s3_bucket}/images/{n}"]["status"] for n in ("a.png", "b.png")] == ["ok", "ok"]


def test_resume_skips_committed_parquet_row_groups_before_reading_their_bytes(tmp_path, monkeypatch):
    import pyarrow.parquet as pq
    import pytest

    png = encode(Image.fromarray(rgb(8, 8, 0)), "PNG")
    images = pa.array([{"bytes": png, "path": f"in/{i % 2}.png"} for i in range(9)])  # paths repeat
    (tmp_path / "pq").mkdir()
    pq.write_table(pa.table({"image": images, "key": [f"k{i}" for i in range(9)]}), tmp_path / "pq" / "a.parquet",
                   row_group_size=3)  # fmt: skip
    file = str(tmp_path / "pq" / "a.parquet")
    read = []
    original = pq.ParquetFile.read_row_group

    def spy(self, group, columns=None):
        read.append((group, tuple(columns)))
        return original(self, group, columns)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", spy)
    for id_column in (None, "key"):
        run = config(tmp_path / "pq", image_column="image", id_column=id_column)
        everything = pa.concat_tables(read_parquet_images(pa.table({"path": [file]}), run, ""))
        ids = everything["image_id"].to_pylist()
        assert len(set(ids)) == 9 and (id_column is None or ids == [f"k{i}" for i in range(9)])
        read.clear()
        committed = pa.array(ids[:4], pa.string())  # all of row group 0, the first row of group 1
        rest = pa.concat_tables(read_parquet_images(pa.table({"path": [file]}), run, "", committed))
        assert rest["image_id"].to_pylist() == ids[4:]
        full = ("image", "key") if id_column else ("image",)
        assert (0, full) not in read and (1, full) in read and (2, full) in read  # group 0: ids only
        assert all(columns != full for group, columns in read if group == 0)
    with pytest.raises(StopIteration):  # all committed: nothing at all
        next(iter(read_parquet_images(pa.table({"path": [file]}), run, "", pa.array(ids, pa.string()))))
