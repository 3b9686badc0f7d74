"""What one training run is: ``TrainConfig``, and ``TrainError`` for a run that cannot start.

Its own module so that the loop (``pipeline.loop.train``) and the data it reads
(``pipeline.loop.train_data``) both import it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from .synthetic import CLASSES


class TrainError(ValueError):
    """A training run that cannot start; the message names the thing and what to do."""


@dataclass(frozen=True)
class TrainConfig:
    """One training run.

    Args:
        data: Parquet dataset (file, folder or ``s3://`` prefix) with image and mask PNGs and a split column.
        output: folder or ``s3://`` prefix for Ray Train's checkpoints and the best ``model.pth``.
        model: registered architecture.
        epochs: most epochs; fewer when ``max_minutes`` runs out first.
        batch_size: crops per step and worker.
        lr: peak AdamW learning rate (linear warm-up over the first epoch, then cosine to zero).
        weight_decay: AdamW weight decay.
        crop: side of the square training crops; smaller images are padded with ignored pixels.
        init_from: checkpoint whose same-named layers initialise the net (FCN-16s -> FCN-8s).
        workers: Ray Train workers (data-parallel replicas).
        threads: torch threads per worker; default this host's cores over its workers.
        num_cpus: logical CPUs of a local Ray cluster; default the cores plus one (``pipeline.cluster``).
        max_minutes: training-time budget; the cosine schedule is shortened to end within it.
        classes: class names, index = class id in the masks.
        image_column: column with the image PNG (binary, or a ``{bytes, path}`` struct).
        mask_column: column with the mask PNG, the same way.
        split_column: column naming each row's split, ``train`` or ``val``.
        seed: seed of crops, flips and initialisation.
        ray_address: cluster to join; default ``$RAY_ADDRESS``, else a new local one.
    """

    data: str
    output: str
    model: str = "fcn8s_mobilenet_v3"
    epochs: int = 40
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    crop: int = 192
    init_from: str | None = None
    workers: int = 1
    threads: int | None = None
    num_cpus: int | None = None
    max_minutes: float | None = None
    classes: tuple[str, ...] = CLASSES
    image_column: str = "image"
    mask_column: str = "mask"
    split_column: str = "split"
    seed: int = 0
    ray_address: str | None = None
