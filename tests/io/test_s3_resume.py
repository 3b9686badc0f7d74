"""A resume into an S3 output: the rerun's totals count the files it has just committed (issue 25 item 4)."""

from __future__ import annotations

import json

import boto3
from imagefiles import encode, rgb
from PIL import Image
from runs import job


def _put(s3, bucket: str, first: int, count: int) -> None:
    for i in range(first, first + count):
        data = encode(Image.fromarray(rgb(24, 32, i)), "JPEG")
        s3.put_object(Bucket=bucket, Key=f"images/img-{i:03d}.jpg", Body=data)


def test_s3_resume_completes_with_totals_of_its_new_files(s3_bucket, s3_endpoint, ray_local, weights):
    s3 = boto3.client("s3")
    _put(s3, s3_bucket, 0, 12)
    source, output = f"s3://{s3_bucket}/images/", f"s3://{s3_bucket}/out"
    assert job(source, output, weights, "--rows-per-file", "4") == 0

    _put(s3, s3_bucket, 12, 4)  # the nightly's new inputs
    # the rerun lists masks/ before its work (resume set) and again after its commits (totals): the
    # second listing must not be the first one's cached
    assert job(source, output, weights, "--rows-per-file", "4", "--mode", "resume") == 0

    manifest = json.loads(s3.get_object(Bucket=s3_bucket, Key="out/_manifest.json")["Body"].read())
    assert manifest["complete"] is True
    assert manifest["counts"]["ok"] == 4
    assert manifest["totals"] == {"inputs": 16, "ok": 16, "errors": 0}
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket, Prefix="out/masks/")["Contents"]]
    assert any(manifest["run_id"] in k for k in keys)
