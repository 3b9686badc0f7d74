"""Render a run's report: ``python -m jobs.report --masks OUTPUT_DIR [flags]``."""

from __future__ import annotations

import sys

from jobs.flags import model_parser, parse, refuse
from pipeline.config import ConfigError, S3Settings, load_config
from pipeline.loop.config import ReportConfig


def parse_args(argv: list[str] | None = None) -> ReportConfig:
    """Flags of the report job (``ReportConfig``'s fields, and ``--config FILE.yaml``), as a ``ReportConfig``.

    Args:
        argv: command line without the program name; ``None`` reads ``sys.argv``.

    Raises:
        ConfigError: a missing or bad option, one line per problem naming its flag.
    """
    description = "Write index.html, a contact sheet and a class distribution chart for a segmentation run."
    overrides, config_file = parse(model_parser("python -m jobs.report", description, ReportConfig), argv)
    return load_config(overrides, config_file, ReportConfig)


def main(argv: list[str] | None = None) -> int:
    """Write the report and print where it went.

    Args:
        argv: command line without the program name; ``None`` reads ``sys.argv``.
    """
    try:
        config = parse_args(argv)
    except ConfigError as exc:
        return refuse(exc)
    from pipeline.loop.report import write_report  # matplotlib loads only once the arguments are good

    storage = S3Settings(**{k: getattr(config, k) for k in S3Settings.model_fields})
    try:
        result = write_report(
            config.masks, config.out, images=config.images, columns=config.columns, images_root=config.images_root,
            storage=storage,
        )  # fmt: skip
    except (ValueError, OSError) as exc:  # ReportError, a bad URI, an unreadable or corrupt Parquet file
        print(f"error: {exc}", file=sys.stderr)
        return 2
    counts = f"{result['rows']} images, {result['ok']} ok, {result['errors']} with errors"
    print(f"wrote {result['out']}/index.html ({counts})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
