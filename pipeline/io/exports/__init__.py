"""Exports of the masks table for the users' own tools, written by ``python -m jobs.export``.

Each format is a module here; ``ledger`` says what is exported already and commits files so that a
reader sees each one whole or not at all; ``batch`` is the Ray Data stage that writes them.
"""

from __future__ import annotations

# format -> whether a row needs a CRS and a geotransform to be exported in it
FORMATS = {"cog": True, "geoparquet": True, "stac": True}


def parse_formats(value: str | list[str]) -> list[str]:
    """``cog,stac`` or ``all`` -> the formats in a stable order; ``stac`` brings ``cog`` (its asset).

    Raises:
        ValueError: an unknown name, with the known ones.
    """
    names = [v.strip() for v in (value.split(",") if isinstance(value, str) else value) if v.strip()]
    if "all" in names:
        names = list(FORMATS)
    unknown = sorted(set(names) - set(FORMATS))
    if unknown or not names:
        raise ValueError(
            f"unknown export format {', '.join(unknown) or '(none)'}: choose from {', '.join(FORMATS)} or all"
        )
    if "stac" in names:
        names.append("cog")
    return [f for f in FORMATS if f in names]
