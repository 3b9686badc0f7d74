"""Write a synthetic aerial scene dataset: ``python -m jobs.make_scenes --output DIR [flags]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.loop.synthetic import write_dataset


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Flags of the scene generator.

    Args:
        argv: command line without the program name; ``None`` reads ``sys.argv``.
    """
    parser = argparse.ArgumentParser(
        prog="python -m jobs.make_scenes",
        description="Generate synthetic aerial scenes with ground-truth masks as PNG files and a Parquet dataset.",
    )
    parser.add_argument("--output", required=True, help="local folder to write images/, masks/, parquet/ into")
    parser.add_argument("--count", type=int, default=200, help="number of scenes (default: 200)")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed; same seed, same scenes (default: 0)")
    parser.add_argument("--min-size", type=int, default=160, help="smallest scene height or width (default: 160)")
    parser.add_argument("--max-size", type=int, default=320, help="largest scene height or width (default: 320)")
    parser.add_argument("--crs", default=None, help="write the images as GeoTIFFs in this CRS, e.g. EPSG:32633")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Write the dataset (a no-op when the same one is already there) and print where it went.

    Args:
        argv: command line without the program name; ``None`` reads ``sys.argv``.
    """
    args = parse_args(argv)
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
