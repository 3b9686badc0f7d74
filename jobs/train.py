"""Train an FCN with Ray Train: ``python -m jobs.train --data URI --output DIR [flags]``."""

from __future__ import annotations

import argparse
import sys

from models.weights import WeightsError
from pipeline.loop.train import fit
from pipeline.loop.train_config import TrainConfig, TrainError


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """Flags of the training job, as a ``TrainConfig``.

    Args:
        argv: command line without the program name; ``None`` reads ``sys.argv``.
    """
    defaults = TrainConfig(data="", output="")
    parser = argparse.ArgumentParser(
        prog="python -m jobs.train",
        description="Train an FCN on a Parquet dataset of image and mask PNGs with Ray Train; reruns resume.",
    )
    parser.add_argument("--data", required=True, help="Parquet dataset with image, mask and split columns")
    parser.add_argument("--output", required=True, help="folder or s3:// prefix for checkpoints and model.pth")
    parser.add_argument("--model", default=defaults.model, help=f"architecture (default: {defaults.model})")
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help=f"most epochs (default: {defaults.epochs})")
    parser.add_argument(
        "--batch-size", type=int, default=defaults.batch_size, help=f"crops per step (default: {defaults.batch_size})"
    )
    parser.add_argument(
        "--lr", type=float, default=defaults.lr, help=f"peak AdamW learning rate (default: {defaults.lr})"
    )
    parser.add_argument(
        "--crop", type=int, default=defaults.crop, help=f"training crop side (default: {defaults.crop})"
    )
    parser.add_argument("--init-from", default=None, help="trained net whose same-named layers initialise this one")
    parser.add_argument("--workers", type=int, default=defaults.workers, help="Ray Train workers (default: 1)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per worker (default: cores/workers)")
    parser.add_argument("--num-cpus", type=int, default=None, help="logical CPUs of a local Ray (default: cores + 1)")
    parser.add_argument("--max-minutes", type=float, default=None, help="fit the schedule into this training time")
    parser.add_argument("--seed", type=int, default=defaults.seed, help=f"seed (default: {defaults.seed})")
    parser.add_argument("--ray-address", default=None, help="Ray cluster to join; default $RAY_ADDRESS, else local")
    return TrainConfig(**vars(parser.parse_args(argv)))


def main(argv: list[str] | None = None) -> int:
    """Train, copy the best weights to ``OUTPUT/model.pth`` and print its validation mean IU and the wall time.

    Args:
        argv: command line without the program name; ``None`` reads ``sys.argv``.
    """
    config = parse_args(argv)
    try:
        summary = fit(config)
    except (TrainError, WeightsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"best: epoch {summary['epoch']}, val mean IU {summary['val_mean_iu']:.4f}; "
        f"wall time {summary['seconds']:.1f}s; weights: {summary['model_path']}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
