"""Exports of the masks table for the users' own tools, written by ``python -m jobs.export``.

Each format is a module here; ``ledger`` says what is exported already and commits files so that a
reader sees each one whole or not at all; ``batch`` is the Ray Data stage that writes them.
"""

from __future__ import annotations

from ..config import EXPORT_NEEDS_CRS, parse_formats  # the formats are options of the config: defined there

__all__ = ["EXPORT_NEEDS_CRS", "parse_formats"]
