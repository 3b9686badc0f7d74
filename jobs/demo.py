"""``make demo``: held-out synthetic scenes -> segment -> evaluate -> report, with bundled weights.

Every step is the real job (``jobs.segment``, ``jobs.evaluate``, ``jobs.report``) run in
this process on one local Ray cluster; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import models
from jobs import evaluate, make_scenes, report, segment

BUNDLED = "fcn8s_mobilenet_v3_scenes"
HELD_OUT_SEED = 1000  # the bundled weights were trained on seed 0: these scenes are new to them


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.demo", description=__doc__)
    parser.add_argument("--workdir", default="out/demo", help="where scenes, masks and the report go")
    parser.add_argument("--count", type=int, default=48, help="number of held-out scenes to generate")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray cluster (default: all)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.time()
    scenes, out = os.path.join(args.workdir, "scenes"), os.path.join(args.workdir, "segmented")
    steps = [
        ("generate", make_scenes.main, ["--output", scenes, "--count", str(args.count), "--seed", str(HELD_OUT_SEED)]),
        ("segment", segment.main, segment_args(scenes, out, args.num_cpus)),
        (
            "evaluate",
            evaluate.main,
            ["--masks", out, "--truth", os.path.join(scenes, "masks"), "--json", f"{out}/eval.json"],
        ),
        ("report", report.main, ["--masks", out]),
    ]
    for name, step, step_args in steps:
        print(f"== {name}: python -m jobs.{step.__module__.rsplit('.', 1)[-1]} {' '.join(step_args)}", flush=True)
        if step(step_args) != 0:
            print(f"demo: the {name} step failed", file=sys.stderr)
            return 1
    with open(f"{out}/eval.json", encoding="utf-8") as f:
        mean_iu = json.load(f)["mean_iu"]
    print(f"\ndemo done in {time.time() - started:.0f} s: mean IU {mean_iu:.3f} on {args.count} held-out scenes")
    print(f"open the report: {os.path.abspath(os.path.join(out, 'report', 'index.html'))}")
    return 0


def segment_args(scenes: str, out: str, num_cpus: int | None) -> list[str]:
    weights = BUNDLED if BUNDLED in models.list_weights() else "random"
    argv = ["--input", os.path.join(scenes, "images"), "--output", out, "--weights", weights, "--mode", "overwrite"]
    return argv + (["--num-cpus", str(num_cpus)] if num_cpus else [])


if __name__ == "__main__":
    sys.exit(main())
