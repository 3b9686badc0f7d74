"""The registered checkpoints: ``python -m jobs.weights list`` and ``python -m jobs.weights fetch NAME``."""

from __future__ import annotations

import argparse
import sys

from models import WeightsError
from models.fetch import FetchError, fetch, weights_table


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m jobs.weights",
        description="List the registered checkpoints, or fetch one on request (a segmentation run never downloads).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="every registered checkpoint: model, classes, URL, sha256, local path")
    get = commands.add_parser("fetch", help="download a registered checkpoint and check its sha256 before use")
    get.add_argument("name", help="a registered weights name (see list)")
    get.add_argument("--mirror", default=None, help="base URL of a mirror to take the file from instead")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "list":
        for row in weights_table():
            state = "present" if row["present"] else "missing"
            print(f"{row['name']}  model {row['model']}, {row['classes']} classes, sha256 {row['sha256'] or '-'}")
            print(f"    {state}: {row['path']}\n    from: {row['url']}")
        return 0
    try:
        print(f"{args.name}: {fetch(args.name, mirror=args.mirror)}")
    except (FetchError, WeightsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
