"""Score a segmentation run against ground truth: ``python -m jobs.evaluate --masks DIR --truth URI [flags]``."""

from __future__ import annotations

import json
import sys

from jobs.flags import model_parser, parse, refuse
from pipeline.config import ConfigError, load_config
from pipeline.loop.config import EvalConfig


def parse_args(argv: list[str] | None = None) -> EvalConfig:
    """Flags of the evaluation job (``EvalConfig``'s fields, and ``--config FILE.yaml``), as an ``EvalConfig``.

    Args:
        argv: command line without the program name; ``None`` reads ``sys.argv``.

    Raises:
        ConfigError: a missing or bad option, one line per problem naming its flag.
    """
    description = "Pixel accuracy, mean accuracy, mean IU and frequency-weighted IU of a segmentation run."
    overrides, config_file = parse(model_parser("python -m jobs.evaluate", description, EvalConfig), argv)
    return load_config(overrides, config_file, EvalConfig)


def main(argv: list[str] | None = None) -> int:
    """Evaluate, print the table, write the JSON; exit 2 on a bad option or inputs that cannot be scored.

    Args:
        argv: command line without the program name; ``None`` reads ``sys.argv``.
    """
    try:
        config = parse_args(argv)
    except ConfigError as exc:
        return refuse(exc)
    import fsspec  # Ray and the readers load only once the arguments are good

    from pipeline.io.storage import storage_options
    from pipeline.loop.evaluate import EvaluationError, evaluate
    from pipeline.loop.metrics import format_report

    try:
        result = evaluate(config)
    except EvaluationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_report(result), flush=True)
    if config.json_path:
        with fsspec.open(config.json_path, "w", **storage_options(config.json_path, config)) as f:
            json.dump(result, f, indent=2)
        print(f"wrote {config.json_path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
