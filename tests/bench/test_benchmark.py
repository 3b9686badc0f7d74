"""The benchmark job end to end on a few tiny images: (a), (b) and (c) run and (b) matches (c)."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pyarrow.parquet as pq

from jobs.benchmark import main
from pipeline.stages.postprocess import decode_png


def test_benchmark_reports_every_figure_and_the_plain_loop_matches_the_pipeline(ray_local, tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["--size", "64", "--images", "12", "--reps", "2", "--scale", "2", "--batch-size", "2", "--threads", "1"]
    assert main([*argv, "--workdir", str(tmp_path), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    printed = capsys.readouterr().out
    assert "2 repetitions of (a), (b), (c) interleaved" in printed and "peak memory at 24 vs 12 images" in printed
    assert len(result["reps"]) == 2 and all(rep["a"] > 0 and rep["b"] > 0 for rep in result["reps"])
    figures = result["figures"]["pipeline"]
    for name in ("a_images_per_second", "c_steady_images_per_second", "c_over_b_steady", "first_mask_seconds"):
        spread = figures[name]
        assert spread["min"] <= spread["median"] <= spread["max"] and len(spread["values"]) == 2, name
        assert name in printed
    c = result["reps"][0]["c"]["pipeline"]
    assert 0 < c["first_mask_seconds"] < c["seconds"] and c["steady_images_per_second"] > 0
    feed = c["feed_ms_per_image"]  # every process's CPU, by stage, over the rows of the steady window
    assert {"read", "decode", "actor_call_outside_model", "encode", "write", "model", "feed"} <= set(feed)
    # 12 tiny images: one decode batch before the window opens, encoding in one bundle after it closes
    assert all(feed[stage] >= 0 for stage in ("read", "decode", "encode", "write"))
    # process CPU sampled every few ms, differenced over the window: a sampling error of a fraction of a ms
    assert all(feed[stage] > -0.5 for stage in ("ray_processes", "driver")), feed
    assert feed["model"] > 0 and feed["feed"] > 0
    assert c["actor_call_seconds"] > 0 and c["actor_task_seconds"] >= c["actor_call_seconds"]
    assert "MapBatches(Segmenter)" in c["stage_seconds"] and c["peak_workers_bytes"] > 0

    # the same images through (b) and through (c) give the same masks and statistics
    plain = pq.read_table(tmp_path / "plain" / "masks.parquet").to_pylist()
    piped = pq.read_table(tmp_path / "pipeline" / "masks").to_pylist()  # the last (c) run: 24 images
    by_name = {os.path.basename(r["source"]): r for r in piped}
    assert len(plain) == 12 and len(piped) == 24
    for row in plain:
        other = by_name[os.path.basename(row["source"])]
        mask, expected = decode_png(row["mask_png"]), decode_png(other["mask_png"])
        assert (mask == expected).mean() > 0.999  # the two normalisations may round a tie differently
        assert np.abs(np.subtract(row["class_pixels"], other["class_pixels"])).sum() <= mask.size // 1000 + 2


def test_gpu_busy_reads_nvidia_smi_samples(tmp_path, monkeypatch):
    from pipeline.bench.measure import GpuBusy

    fake = tmp_path / "nvidia-smi"  # prints what `nvidia-smi --query-gpu=... --loop-ms=...` prints
    fake.write_text("#!/bin/sh\nprintf '0, 100\\n50, 200\\n100, 300\\n[N/A], 1\\n0, 250\\n'\nexec sleep 30\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    with GpuBusy() as gpu:
        deadline = time.monotonic() + 10
        while len(gpu.samples) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
    summary = gpu.summary()
    assert summary["samples"] == 4 and summary["busy_percent"] == 37.5  # the [N/A] line is skipped
    assert summary["busy_percent_active"] == 75.0 and summary["peak_memory_mib"] == 300


def test_actor_parts_time_each_part_of_the_inference_actor(tmp_path, capsys):
    out = tmp_path / "parts.json"
    argv = ["--actor-parts", "--size", "48", "--batch-size", "2", "--reps", "1", "--workdir", str(tmp_path)]
    assert main([*argv, "--json", str(out)]) == 0
    parts = json.loads(out.read_text())["actor_parts_ms_per_batch"]
    assert set(parts) == {
        "host_to_device", "decode_jpegs_in_actor", "forward", "segment", "call_task_decoded", "call_actor_decoded",
    }  # fmt: skip
    assert all(ms > 0 for name, ms in parts.items() if name != "host_to_device")  # a CPU "copy" may take no time
    assert "forward" in capsys.readouterr().out
