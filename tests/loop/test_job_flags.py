"""The loop's jobs build their flags from their configs (``jobs.flags``): values parse into the config, a
``--config`` YAML file fills what the flags leave, and a bad value exits 2 with one line naming its flag."""

from __future__ import annotations

import pytest

from jobs import evaluate, make_scenes, report, train
from pipeline.loop.config import EvalConfig, ReportConfig, ScenesConfig
from pipeline.loop.train_config import TrainConfig

# job, its config, flags to parse with what they give, a bad flag value and the flag the error names
JOBS = {
    "evaluate": (
        evaluate, EvalConfig,
        ["--masks", "m", "--truth", "t", "--truth-format", "png", "--json", "e.json", "--s3-endpoint-url", "http://s3",
         "--num-cpus", "3"],
        {"masks": "m", "truth": "t", "truth_format": "png", "json_path": "e.json", "s3_endpoint_url": "http://s3",
         "num_cpus": 3, "truth_column": "mask", "id_column": "image_id", "ray_address": None},
        ["--masks", "m", "--truth", "t", "--truth-format", "tif"], "--truth-format",
    ),
    "train": (
        train, TrainConfig,
        ["--data", "d", "--output", "o", "--epochs", "3", "--lr", "0.01", "--max-minutes", "1.5", "--classes", "a, b",
         "--s3-anonymous", "--ray-address", "auto"],
        {"data": "d", "output": "o", "epochs": 3, "lr": 0.01, "max_minutes": 1.5, "classes": ("a", "b"),
         "s3_anonymous": True, "ray_address": "auto", "batch_size": 16, "crop": 192, "workers": 1, "seed": 0},
        ["--data", "d", "--output", "o", "--batch-size", "0"], "--batch-size",
    ),
    "report": (
        report, ReportConfig,
        ["--masks", "s3://b/run", "--out", "r", "--images", "0", "--s3-profile", "p"],
        {"masks": "s3://b/run", "out": "r", "images": 0, "columns": 4, "images_root": None, "s3_profile": "p"},
        ["--masks", "m", "--columns", "0"], "--columns",
    ),
    "make_scenes": (
        make_scenes, ScenesConfig,
        ["--output", "o", "--count", "5", "--min-size", "64", "--crs", "EPSG:32633"],
        {"output": "o", "count": 5, "seed": 0, "min_size": 64, "max_size": 320, "crs": "EPSG:32633"},
        ["--output", "o", "--count", "many"], "--count",
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", JOBS)
def test_flags_parse_into_the_jobs_config(name):
    job, model, argv, expected, _, _ = JOBS[name]
    config = job.parse_args(argv)
    assert isinstance(config, model)
    assert {key: getattr(config, key) for key in expected} == expected


@pytest.mark.parametrize("name", JOBS)
def test_a_bad_value_exits_2_with_one_line_naming_the_flag(name, capsys):
    job, _, _, _, bad, flag = JOBS[name]
    assert job.main(bad) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {flag}: "), err


@pytest.mark.parametrize("name", JOBS)
def test_help_and_a_config_file(name, tmp_path, capsys):
    job, _, argv, expected, _, _ = JOBS[name]
    with pytest.raises(SystemExit) as exit_:
        job.parse_args(["--help"])
    assert exit_.value.code == 0 and "--config" in capsys.readouterr().out
    # the YAML file gives the first option; the flags after it win over the file
    key = argv[0].removeprefix("--").replace("-", "_")
    (tmp_path / "job.yaml").write_text(f"{key}: from-file\nnot_an_option: 1\n")
    assert job.main(["--config", str(tmp_path / "job.yaml"), *argv[2:]]) == 2
    assert "--not-an-option: unknown option" in capsys.readouterr().err
    (tmp_path / "job.yaml").write_text(f"{key}: from-file\n")
    config = job.parse_args(["--config", str(tmp_path / "job.yaml"), *argv[2:]])
    assert getattr(config, key) == "from-file" and getattr(config, list(expected)[1]) == expected[list(expected)[1]]


def test_a_missing_required_flag_and_sizes_out_of_order_are_named(capsys):
    assert evaluate.main(["--masks", "m"]) == 2
    assert capsys.readouterr().err.strip() == "error: --truth: required"
    assert make_scenes.main(["--output", "o", "--min-size", "300", "--max-size", "200"]) == 2
    assert capsys.readouterr().err.strip() == "error: --max-size 200 is below --min-size 300"
