"""Train an FCN with Ray Train: ``python -m jobs.train --data URI --output DIR [flags]``."""

from __future__ import annotations

import sys

from jobs.flags import model_parser, parse, refuse
from pipeline.config import ConfigError, load_config
from pipeline.loop.train_config import TrainConfig


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """Flags of the training job (``TrainConfig``'s fields, and ``--config FILE.yaml``), as a ``TrainConfig``.

    Args:
        argv: command line without the program name; ``None`` reads ``sys.argv``.

    Raises:
        ConfigError: a missing or bad option, one line per problem naming its flag.
    """
    description = "Train an FCN on a Parquet dataset of image and mask PNGs with Ray Train; reruns resume."
    overrides, config_file = parse(model_parser("python -m jobs.train", description, TrainConfig), argv)
    return load_config(overrides, config_file, TrainConfig)


def main(argv: list[str] | None = None) -> int:
    """Train, copy the best weights to ``OUTPUT/model.pth`` and print its validation mean IU and the wall time.

    Args:
        argv: command line without the program name; ``None`` reads ``sys.argv``.
    """
    try:
        config = parse_args(argv)
    except ConfigError as exc:
        return refuse(exc)
    from models.weights import WeightsError  # torch and Ray load only once the arguments are good
    from pipeline.loop.train import fit
    from pipeline.loop.train_config import TrainError

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
