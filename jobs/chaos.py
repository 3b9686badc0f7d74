"""Break the segmentation job on purpose and count what survives: ``python -m jobs.chaos [flags]``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

from pipeline.testing.chaos import SCENARIOS, run_all, table


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m jobs.chaos",
        description="Run jobs.segment under real faults (killed actor, killed driver, Ctrl-C, flaky S3, "
        "hostile files, nightly kills, racing runs, replaced files) and print inputs, rows out, errors, "
        "lost and duplicated per scenario.",
    )
    parser.add_argument("--images", type=int, default=12, help="images shared by the scenarios a to e (default 12)")
    parser.add_argument("--workdir", type=Path, default=None, help="empty folder for inputs, outputs and logs")
    parser.add_argument("--json", type=Path, default=None, help="also write the outcomes to this JSON file")
    parser.add_argument("--only", default="".join(SCENARIOS), help="letters of the scenarios to run (default all)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios; exit code 0 when every input came out exactly once and nothing else broke."""
    args = parse_args(argv)
    if unknown := set(args.only) - set(SCENARIOS):
        print(
            f"error: --only: unknown scenario(s) {''.join(sorted(unknown))}; choose from {''.join(SCENARIOS)}",
            file=sys.stderr,
        )
        return 2
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="fcn-chaos-"))
    print(f"workdir: {workdir}", flush=True)
    outcomes = run_all(workdir, args.images, args.only)
    print(table(outcomes))
    if args.json:
        args.json.write_text(json.dumps([dataclasses.asdict(o) for o in outcomes], indent=2, default=str))
    return 0 if all(o.passed for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
