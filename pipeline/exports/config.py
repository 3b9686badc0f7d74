"""The export configuration: one pydantic model that ``jobs.export``'s flags and YAML files share."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from ..config import EXPORT_NEEDS_CRS, Shared, parse_formats


class ExportConfig(Shared):
    """An export of a finished run's masks table; each field is also a ``--flag`` of ``jobs.export``."""

    masks: str = Field(description="the segment run's --output (folder or S3 prefix holding masks/)")
    to: list[str] = Field(
        description=f"formats, comma-separated: {', '.join(EXPORT_NEEDS_CRS)}, or all (stac brings cog)"
    )
    mode: Literal["resume", "overwrite"] = Field(
        "resume", description="resume: export only images not exported yet; overwrite: redo the chosen formats"
    )
    min_area: float = Field(0.0, ge=0, description="geoparquet: leave out regions smaller than this (CRS units^2)")
    simplify: float = Field(0.0, ge=0, description="geoparquet: simplify outlines to this tolerance (CRS units)")
    batch_size: int = Field(16, gt=0, description="masks per export task")

    @field_validator("to", mode="before")
    @classmethod
    def _formats(cls, value):
        return parse_formats(value)
