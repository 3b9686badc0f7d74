"""Score a segmentation run against ground truth: ``python -m jobs.evaluate --masks DIR --truth URI [flags]``."""

from __future__ import annotations

import argparse
import json
import sys

import fsspec

from pipeline.loop.evaluate import EvalConfig, EvaluationError, evaluate
from pipeline.loop.metrics import format_report


def parse_args(argv: list[str] | None = None) -> EvalConfig:
    """Flags of the evaluation job, as an ``EvalConfig``.

    Args:
        argv: command line without the program name; ``None`` reads ``sys.argv``.
    """
    parser = argparse.ArgumentParser(
        prog="python -m jobs.evaluate",
        description="Pixel accuracy, mean accuracy, mean IU and frequency-weighted IU of a segmentation run.",
    )
    parser.add_argument("--masks", required=True, help="output folder of jobs.segment (or its masks/), local or s3://")
    parser.add_argument(
        "--truth", required=True, help="truth: Parquet dataset (joined on the id) or folder of PNG masks (by stem)"
    )
    parser.add_argument("--truth-column", default="mask", help="Parquet column with the truth PNG (default: mask)")
    parser.add_argument("--id-column", default="image_id", help="Parquet column matching image_id (default: image_id)")
    parser.add_argument(
        "--truth-format",
        choices=("auto", "parquet", "png"),
        default="auto",
        help="auto: Parquet when --truth holds .parquet files, else PNG files (default: auto)",
    )
    parser.add_argument("--json", dest="json_path", default=None, help="write metrics, per-class IU and counts here")
    parser.add_argument("--ray-address", default=None, help="Ray cluster to join; default $RAY_ADDRESS, else local")
    parser.add_argument("--num-cpus", type=int, default=None, help="logical CPUs of a local Ray (default: cores + 1)")
    return EvalConfig(**vars(parser.parse_args(argv)))


def main(argv: list[str] | None = None) -> int:
    """Evaluate, print the table, write the JSON; exit 2 on inputs that cannot be scored.

    Args:
        argv: command line without the program name; ``None`` reads ``sys.argv``.
    """
    config = parse_args(argv)
    try:
        result = evaluate(config)
    except EvaluationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_report(result), flush=True)
    if config.json_path:
        with fsspec.open(config.json_path, "w") as f:
            json.dump(result, f, indent=2)
        print(f"wrote {config.json_path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
