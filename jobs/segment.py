"""Segment an image collection: ``python -m jobs.segment --input URI --output URI [flags]``."""

from __future__ import annotations

import argparse
import sys
import types
import typing

from pipeline.config import RANDOM_WEIGHTS, ConfigError, RunConfig, load_config
from pipeline.quiet import quiet_ray


def parse_args(argv: list[str] | None = None) -> tuple[dict, str | None]:
    """Flags built from ``RunConfig``'s fields, so ``--help`` documents every option."""
    parser = argparse.ArgumentParser(
        prog="python -m jobs.segment",
        description="Segment images with an FCN on Ray Data and write Parquet mask tables.",
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument("--config", default=None, help="YAML file of options (same names as the flags); flags win")
    for name, field in RunConfig.model_fields.items():
        flag = "--" + name.replace("_", "-")
        if _base_type(field.annotation) is bool:
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, help=field.description)
        else:
            default = "" if field.is_required() else f" (default: {field.default})"
            parser.add_argument(flag, dest=name, metavar=name.upper(), help=f"{field.description}{default}")
    args = vars(parser.parse_args(argv))
    return args, args.pop("config")


def _base_type(annotation):
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return next(a for a in typing.get_args(annotation) if a is not type(None))
    return annotation


def refuse(exc: ConfigError) -> int:
    for problem in exc.problems:
        print(f"error: {problem}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    overrides, config_file = parse_args(argv)
    try:
        config = load_config(overrides, config_file)
    except ConfigError as exc:
        return refuse(exc)
    from pipeline.run import preflight, run  # torch and Ray load only once the arguments are good

    try:
        plan = preflight(config)
    except ConfigError as exc:
        return refuse(exc)
    print(f"run {plan.run_id}: {config.model} ({plan.weights.name}) on {config.input} -> {config.output}", flush=True)
    if not config.verbose:
        print(f"Ray's own log lines go to {quiet_ray(plan.run_id)} (--verbose shows them here)", flush=True)
    if config.random_weights:
        print(f"warning: {RANDOM_WEIGHTS}", file=sys.stderr, flush=True)
    try:
        record = run(config, plan)
    except ConfigError as exc:  # found once listing starts: an input folder without images
        return refuse(exc)
    except KeyboardInterrupt:
        print("interrupted: committed images are kept; rerun the same command to resume", file=sys.stderr)
        return 130
    counts = record["counts"]
    if not record["pool_started"]:
        print("nothing new: every listed input is committed already; the inference pool was not started", flush=True)
    print(
        f"done: {counts['rows']} images ({counts['ok']} ok, {counts['errors']} errors, "
        f"{counts['already_committed']} already committed) in {record['seconds']:.1f}s, "
        f"{record['images_per_second']:.2f} images/s; output: {config.output}"
        + (" (random weights: the masks mean nothing)" if config.random_weights else ""),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
