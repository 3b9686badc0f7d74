"""The configurations of the jobs around a run: ``jobs.evaluate``, ``jobs.report`` and ``jobs.make_scenes``.

Pydantic models, as ``RunConfig`` is for ``jobs.segment``: each field is also a ``--flag`` of its job
(``jobs.flags``) and a key of its ``--config`` YAML file. The S3 and Ray settings are the run's own
(``config.S3Settings``, ``config.RaySettings``), so every job reaches S3 the same way. Training's
configuration is ``train_config``'s.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..config import RaySettings, S3Settings


class EvalConfig(RaySettings, S3Settings):
    """What to score against what; each field is also a ``--flag`` of ``jobs.evaluate``."""

    masks: str = Field(description="output folder of jobs.segment (or its masks/), local or s3://")
    truth: str = Field(description="truth: Parquet dataset (joined on the id) or folder of PNG masks (by stem)")
    truth_column: str = Field("mask", description="Parquet column with the truth PNG")
    id_column: str = Field("image_id", description="Parquet column matching image_id")
    truth_format: Literal["auto", "parquet", "png"] = Field(
        "auto", description="auto: Parquet when --truth holds .parquet files, else PNG files"
    )
    json_path: str | None = Field(
        None, description="write metrics, per-class IU and counts here", json_schema_extra={"flags": ["--json"]}
    )


class ReportConfig(S3Settings):
    """A run's report; each field is also a ``--flag`` of ``jobs.report``."""

    masks: str = Field(description="the run's output folder or S3 prefix (holding masks/)")
    out: str | None = Field(None, description="folder or S3 prefix for the report (default: MASKS/report)")
    images: int = Field(24, ge=0, description="most images on the contact sheet")
    columns: int = Field(4, ge=1, description="tiles per row of the contact sheet")
    images_root: str | None = Field(
        None, description="folder to look for source images in first, by their trailing path parts"
    )


class ScenesConfig(BaseModel):
    """A synthetic aerial scene dataset (``synthetic.write_dataset``); each field is a ``--flag`` of
    ``jobs.make_scenes``. Local only: no S3 settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    output: str = Field(description="local folder to write images/, masks/, parquet/ into")
    count: int = Field(200, ge=0, description="number of scenes")
    seed: int = Field(0, ge=0, description="dataset seed; same seed, same scenes")
    min_size: int = Field(160, ge=16, description="smallest scene height or width")
    max_size: int = Field(320, ge=16, description="largest scene height or width")
    crs: str | None = Field(None, description="write the images as GeoTIFFs in this CRS, e.g. EPSG:32633")

    @model_validator(mode="after")
    def _sizes(self):
        if self.max_size < self.min_size:
            raise ValueError(f"--max-size {self.max_size} is below --min-size {self.min_size}")
        return self
