"""What one training run is: ``TrainConfig``, and ``TrainError`` for a run that cannot start.

Its own module so that the loop (``pipeline.loop.train``) and the data it reads
(``pipeline.loop.train_data``) both import it without importing each other.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from ..config import RaySettings, S3Settings
from .synthetic import CLASSES


class TrainError(ValueError):
    """A training run that cannot start; the message names the thing and what to do."""


class TrainConfig(RaySettings, S3Settings):
    """One training run; each field is also a ``--flag`` of ``jobs.train`` and a key of its ``--config`` YAML.

    The S3 settings reach ``data``, ``output`` and ``init_from`` when they are ``s3://``; the Ray settings
    say which cluster the workers run on.
    """

    data: str = Field(description="Parquet dataset (file, folder or s3:// prefix) with image, mask and split columns")
    output: str = Field(description="folder or s3:// prefix for Ray Train's checkpoints and the best model.pth")
    model: str = Field("fcn8s_mobilenet_v3", description="registered architecture")
    epochs: int = Field(40, gt=0, description="most epochs; fewer when --max-minutes runs out first")
    batch_size: int = Field(16, gt=0, description="crops per step and worker")
    lr: float = Field(
        2e-3, gt=0, description="peak AdamW learning rate (linear warm-up over the first epoch, then cosine to zero)"
    )
    weight_decay: float = Field(1e-4, ge=0, description="AdamW weight decay")
    crop: int = Field(192, gt=0, description="side of the square training crops; smaller images are padded")
    init_from: str | None = Field(
        None, description="trained net whose same-named layers initialise this one (FCN-16s -> FCN-8s)"
    )
    workers: int = Field(1, gt=0, description="Ray Train workers (data-parallel replicas)")
    threads: int | None = Field(None, gt=0, description="torch threads per worker; default the cores over the workers")
    max_minutes: float | None = Field(
        None, gt=0, description="training-time budget; the cosine schedule is shortened to end within it"
    )
    classes: tuple[str, ...] = Field(CLASSES, description="class names, comma-separated; index = class id in the masks")
    image_column: str = Field("image", description="column with the image PNG (binary, or a {bytes, path} struct)")
    mask_column: str = Field("mask", description="column with the mask PNG, the same way")
    split_column: str = Field("split", description="column naming each row's split, train or val")
    seed: int = Field(0, description="seed of crops, flips and initialisation")

    @field_validator("classes", mode="before")
    @classmethod
    def _split_classes(cls, value):
        if isinstance(value, str):
            return tuple(name.strip() for name in value.split(",") if name.strip())
        return value
