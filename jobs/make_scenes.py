"""Write a synthetic aerial scene dataset: ``python -m jobs.make_scenes --output DIR [flags]``."""

from __future__ import annotations

import sys
from pathlib import Path

from jobs.flags import model_parser, parse, refuse
from pipeline.config import ConfigError, load_config
from pipeline.loop.config import ScenesConfig


def parse_args(argv: list[str] | None = None) -> ScenesConfig:
    """Flags of the scene generator (``ScenesConfig``'s fields, and ``--config FILE.yaml``), as a ``ScenesConfig``.

    Args:
        argv: command line without the program name; ``None`` reads ``sys.argv``.

    Raises:
        ConfigError: a missing or bad option, one line per problem naming its flag.
    """
    description = "Generate synthetic aerial scenes with ground-truth masks as PNG files and a Parquet dataset."
    overrides, config_file = parse(model_parser("python -m jobs.make_scenes", description, ScenesConfig), argv)
    return load_config(overrides, config_file, ScenesConfig)


def main(argv: list[str] | None = None) -> int:
    """Write the dataset (a no-op when the same one is already there) and print where it went.

    Args:
        argv: command line without the program name; ``None`` reads ``sys.argv``.
    """
    try:
        args = parse_args(argv)
    except ConfigError as exc:
        return refuse(exc)
    from pipeline.loop.synthetic import write_dataset

    verb = "already had" if Path(args.output, "_SUCCESS").exists() else "wrote"  # write_dataset is then a no-op
    try:
        sizes = (args.min_size, args.max_size)
        record = write_dataset(args.output, args.count, seed=args.seed, sizes=sizes, crs=args.crs)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    files = len(record["parquet_files"])
    print(f"{verb} {record['count']} scenes (seed {args.seed}, {args.min_size}-{args.max_size} px) in {record['root']}")
    kind = f"GeoTIFF ({args.crs})" if args.crs else "PNG"
    print(f"  {kind}: {record['images']}; PNG: {record['masks']} (mask pixel = class id)")
    print(f"  Parquet: {record['parquet']} ({files} file(s); columns image, mask, image_id, split)")
    print(f"  classes: {', '.join(f'{i}={name}' for i, name in enumerate(record['classes']))}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
