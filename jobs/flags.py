"""Command-line flags built from a pydantic config's fields, so ``--help`` documents every option."""

from __future__ import annotations

import argparse
import sys
import types
import typing

from pipeline.config import ConfigError, Shared


def model_parser(prog: str, description: str, model: type) -> argparse.ArgumentParser:
    """A parser with ``--config`` and one flag per field of ``model``: its own fields first, then ``Shared``'s.

    A field's flag is its name with dashes; ``Field(json_schema_extra={"flags": ["--json"]})`` gives it
    more names (a flag kept from before the field had its name).

    Args:
        prog: the program name in ``--help``.
        description: what the job does.
        model: the config class (``RunConfig``, ``ExportConfig``, ``EvalConfig``, ...).
    """
    parser = argparse.ArgumentParser(prog=prog, description=description, argument_default=argparse.SUPPRESS)
    parser.add_argument("--config", default=None, help="YAML file of options (same names as the flags); flags win")
    fields = sorted(model.model_fields.items(), key=lambda item: item[0] in Shared.model_fields)
    for name, field in fields:
        flags = ["--" + name.replace("_", "-"), *(field.json_schema_extra or {}).get("flags", [])]
        if _base_type(field.annotation) is bool:
            parser.add_argument(*flags, dest=name, action=argparse.BooleanOptionalAction, help=field.description)
        else:
            default = "" if field.is_required() else f" (default: {field.default})"
            parser.add_argument(*flags, dest=name, metavar=name.upper(), help=f"{field.description}{default}")
    return parser


def parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> tuple[dict, str | None]:
    """The flags given (``--config`` apart) and the ``--config`` file, or None."""
    args = vars(parser.parse_args(argv))
    return args, args.pop("config")


def _base_type(annotation):
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return next(a for a in typing.get_args(annotation) if a is not type(None))
    return annotation


def refuse(exc: ConfigError) -> int:
    """Print each problem as ``error: ...`` and return the usage exit code (2)."""
    for problem in exc.problems:
        print(f"error: {problem}", file=sys.stderr)
    return 2
