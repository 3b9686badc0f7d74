"""Render a run's report: ``python -m jobs.report --masks OUTPUT_DIR [flags]``."""

from __future__ import annotations

import argparse
import sys

from pipeline.loop.report import write_report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Flags of the report job.

    Args:
        argv: command line without the program name; ``None`` reads ``sys.argv``.
    """
    parser = argparse.ArgumentParser(
        prog="python -m jobs.report",
        description="Write index.html, a contact sheet and a class distribution chart for a segmentation run.",
    )
    parser.add_argument("--masks", required=True, help="the run's output folder or S3 prefix (holding masks/)")
    parser.add_argument("--out", default=None, help="folder for the report (default: MASKS/report)")
    parser.add_argument("--images", type=int, default=24, help="most images on the contact sheet (default: 24)")
    parser.add_argument("--columns", type=int, default=4, help="tiles per row of the contact sheet (default: 4)")
    parser.add_argument(
        "--images-root", default=None, help="folder to look for source images in first, by their trailing path parts"
    )
    args = parser.parse_args(argv)
    if args.images < 0 or args.columns < 1:
        parser.error("--images must be >= 0 and --columns >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Write the report and print where it went.

    Args:
        argv: command line without the program name; ``None`` reads ``sys.argv``.
    """
    args = parse_args(argv)
    try:
        result = write_report(
            args.masks, args.out, images=args.images, columns=args.columns, images_root=args.images_root
        )
    except (ValueError, OSError) as exc:  # ReportError, a bad URI, an unreadable or corrupt Parquet file
        print(f"error: {exc}", file=sys.stderr)
        return 2
    counts = f"{result['rows']} images, {result['ok']} ok, {result['errors']} with errors"
    print(f"wrote {result['out']}/index.html ({counts})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
