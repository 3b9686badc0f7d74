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
    argv = ["--size", "64", "--images", "6", "--reps", "1", "--scale", "2", "--batch-size", "2", "--threads", "1"]
    assert main([*argv, "--workdir", str(tmp_path), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    printed = capsys.readouterr().out
    for line in ("(a) model alone", "(b) plain loop", "(c) pipeline,     6 images", "(c) pipeline,    12", "c/a ="):
        assert line in printed
    assert result["model_alone_images_per_second"] > 0 and result["plain_loop_images_per_second"] > 0
    assert sorted(result["pipeline_runs"]) == ["12", "6"]
    steady = result["steady_state"]
    rate = steady["pipeline_images_per_second"]  # 6 more tiny images may take no longer: then None
    assert steady["images"] == [6, 12] and (rate is None or rate > 0)
    assert ("(c) steady state" in printed) and (rate is None) == ("not measurable" in printed)
    assert result["pipeline_peak_workers_bytes"] > 0 and "MapBatches(Segmenter)" in result["pipeline_stage_seconds"]

    # the same images through (b) and through (c) give the same masks and statistics
    plain = pq.read_table(tmp_path / "plain" / "masks.parquet").to_pylist()
    piped = pq.read_table(tmp_path / "pipeline" / "masks").to_pylist()  # the last (c) run: 12 images
    by_name = {os.path.basename(r["source"]): r for r in piped}
    assert len(plain) == 6 and len(piped) == 12
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
