"""Segment an image collection: ``python -m jobs.segment --input URI --output URI [flags]``."""

from __future__ import annotations

import sys

from jobs.flags import model_parser, parse, refuse
from pipeline.config import RANDOM_WEIGHTS, ConfigError, RunConfig, Shared, load_config
from pipeline.quiet import quiet_ray


def parse_args(argv: list[str] | None = None) -> tuple[dict, str | None]:
    """Flags built from ``RunConfig``'s fields, so ``--help`` documents every option."""
    description = "Segment images with an FCN on Ray Data and write Parquet mask tables."
    return parse(model_parser("python -m jobs.segment", description, RunConfig), argv)


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
        # the progress line on a terminal only: a submitted job's log or a file gets the summary line
        record = run(config, plan, progress=not config.verbose and sys.stdout.isatty())
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
    if config.export:
        from jobs.export import run_export
        from pipeline.exports.config import ExportConfig

        shared = {k: getattr(config, k) for k in Shared.model_fields}
        return run_export(ExportConfig(masks=config.output, to=config.export, **shared))
    return 0


if __name__ == "__main__":
    sys.exit(main())
